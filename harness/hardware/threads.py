"""How many CPU threads an experiment's engine computes with: an explicit, recorded setting.

An engine left to itself picks its own count (torch: every core it sees; llama.cpp: half of them),
and on a shared host that choice alone moves throughput and J/token several-fold. So every
experiment has one thread count, resolved here the same way for every backend:

1. the backend's own option when the suite sets one (``pytorch.threads``, ``llamacpp.n_threads``):
   it names the engine's knob exactly, so it wins;
2. else the experiment's ``threads`` key (suite schema_version 4; sweepable: ``threads: [1, 2]``);
3. else the CPUs this process is allowed to run on (its affinity mask: a container's cpuset or a
   ``taskset`` shrink it), not the host's core count.

Backends apply ``count`` to their engine and the harness records the setting (count and source) in
the result's ``provenance.measurement.threads``. A backend written later (mlx, ...) reads the same
``resolve_threads(config, own_option)``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

#: Where a thread count came from (result provenance.measurement.threads.source).
SOURCE_BACKEND_OPTION = "backend_option"
SOURCE_EXPERIMENT = "experiment"
SOURCE_AFFINITY = "affinity"
#: The engine fixes its own count and offers no setting (mlx's CPU back-end: one thread per
#: operation); the requested count, if any, is recorded by the backend as not applied.
SOURCE_ENGINE_FIXED = "engine_fixed"


@dataclass(frozen=True)
class ThreadSetting:
    """The thread count an experiment computes with and why it is that count."""

    count: int
    source: str  # SOURCE_BACKEND_OPTION | SOURCE_EXPERIMENT | SOURCE_AFFINITY
    allowed_cpus: int  # CPUs in this process's affinity mask when it was resolved

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the result."""
        return asdict(self)


def allowed_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def resolve_threads(config: dict[str, Any], backend_option: Any = None) -> ThreadSetting:
    """The thread setting of the expanded experiment ``config``; ``backend_option`` is the value
    of the backend's own thread option (None/0 when unset). See the module docstring."""
    cpus = allowed_cpus()
    if backend_option:
        return ThreadSetting(int(backend_option), SOURCE_BACKEND_OPTION, cpus)
    if config.get("threads"):
        return ThreadSetting(int(config["threads"]), SOURCE_EXPERIMENT, cpus)
    return ThreadSetting(cpus, SOURCE_AFFINITY, cpus)
