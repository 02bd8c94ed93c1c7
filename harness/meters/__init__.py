"""Energy meters: one module each, context managers around exactly the measured region."""
