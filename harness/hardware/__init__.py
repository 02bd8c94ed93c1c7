"""Hardware: the device layer (``gpu/``), telemetry, the environment snapshot, device peaks and
the self test of an environment (``python -m harness check``).
"""
