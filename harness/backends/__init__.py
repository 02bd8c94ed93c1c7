"""Inference backends: one module each, registered lazily in ``harness.contract.registry``."""
