"""Model references: what a suite's ``model:`` may name (``refs``), bundled architectures for
``weights: dummy`` (``dummy_weights``, ``configs/``) and the converted-GGUF cache (``gguf_cache``).
"""
