"""Fakes of the outside world for unit tests (a fake ``pynvml`` module, ...); never of our code."""
