"""lembench: the host-side controller of the LLM inference energy benchmark.

It reads suites, plans harness launches, runs them through a runtime, validates and stores results,
and reports. It never imports an inference engine.
"""

from harness import __version__

__all__ = ["__version__"]
