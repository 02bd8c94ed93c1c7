"""Runtimes launch one harness process per load group and cycle: ``local`` (a subprocess)."""

from __future__ import annotations

from lembench.runtimes.base import LaunchOutcome, Runtime
from lembench.runtimes.local import LocalRuntime

RUNTIMES: dict[str, type[Runtime]] = {"local": LocalRuntime}


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name`` (names are validated with the suite schema)."""
    return RUNTIMES[name]()


__all__ = ["RUNTIMES", "LaunchOutcome", "Runtime", "get_runtime"]
