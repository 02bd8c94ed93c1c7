"""lembench's JSON Schemas (suite, request, result), shipped as ``harness.schema_files``.

This folder is the one copy of the schemas; pyproject.toml maps it into the harness package so the
controller and every backend image read the same files.
"""
