"""Warmup before a measured window: a fixed number of batches, or until batch latencies settle.

Fixed (``cv_threshold`` None): run ``runs`` batches. Adaptive: run at least ``runs`` batches and at
least ``cv_window`` of them, then stop as soon as the coefficient of variation (sample standard
deviation / mean) of the last ``cv_window`` batch latencies is below ``cv_threshold``; give up after
``max_runs`` batches (``converged`` False -> the ``warmup_not_converged`` warning). Latencies are
wall-clock times of ``run_batch(i)``, which runs warmup batch ``i``; the caller maps ``i`` to a
batch (e.g. ``batches[i % len(batches)]``). Batches of different sizes differ in latency by nature,
which the CV cannot tell from instability: there, cycle through equal batches (or the same one).

Once per load group: a warm model stays warm between the experiments of one harness process, so
``warmup_key`` names what one warmup is good for and the window code skips a warmup whose key was
already warmed (see docs/methodology.md). The key always holds the experiment's warmup block (other
settings are another request); it holds the batch shape (batch size, token lengths, batching,
traffic, decoding) only where the backend says shapes warm separately (``warmup_per_shape``: GPU
kernels, autotuning, compiled graphs). CPU eager engines warm once: allocator, thread pool and
weights in cache are shape-independent.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_CV_WINDOW = 3
DEFAULT_MAX_RUNS = 20


@dataclass
class WarmupReport:
    """What the warmup did: batches run, their latencies, and whether latencies settled."""

    runs: int
    latencies_s: list[float] = field(default_factory=list)
    final_cv: float | None = None  # CV of the last cv_window latencies (None with fewer than that)
    converged: bool | None = None  # None when no cv_threshold was set (fixed warmup)
    cv_threshold: float | None = None
    cv_window: int = DEFAULT_CV_WINDOW
    reused: bool = False  # no batch run: this load group was already warm for this key

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation / mean of at least two values (0 when all are 0)."""
    if len(values) < 2:
        raise ValueError("the coefficient of variation needs at least two values")
    mean = math.fsum(values) / len(values)
    stdev = statistics.stdev(values)
    if mean == 0:
        return 0.0 if stdev == 0 else math.inf
    return stdev / abs(mean)


def warm_up(
    run_batch: Callable[[int], None],
    runs: int,
    cv_threshold: float | None,
    cv_window: int = DEFAULT_CV_WINDOW,
    max_runs: int = DEFAULT_MAX_RUNS,
    clock: Callable[[], float] = time.perf_counter,
) -> WarmupReport:
    """Run warmup batches (see the module docstring) and report them.

    ``runs`` is the minimum (the fixed count without ``cv_threshold``); ``max_runs`` caps the
    adaptive warmup and is raised to ``max(runs, cv_window)`` when lower, so the minimum always
    runs and a CV can be computed.
    """
    if runs < 0:
        raise ValueError(f"warmup runs must be >= 0, got {runs}")
    if cv_window < 2:
        raise ValueError(f"cv_window must be >= 2 (a sample deviation needs two), got {cv_window}")
    if cv_threshold is not None and cv_threshold <= 0:
        raise ValueError(f"cv_threshold must be > 0, got {cv_threshold}")

    report = WarmupReport(runs=0, cv_threshold=cv_threshold, cv_window=cv_window)

    def step() -> None:
        start = clock()
        run_batch(report.runs)
        report.latencies_s.append(clock() - start)
        report.runs += 1
        if len(report.latencies_s) >= cv_window:
            report.final_cv = coefficient_of_variation(report.latencies_s[-cv_window:])

    if cv_threshold is None:
        for _ in range(runs):
            step()
        return report

    minimum = max(runs, cv_window)
    limit = max(max_runs, minimum)
    while report.runs < limit:
        step()
        settled = report.final_cv is not None and report.final_cv < cv_threshold
        if report.runs >= minimum and settled:
            report.converged = True
            return report
    report.converged = False
    return report


def warmup_key(config: dict[str, Any], per_shape: bool) -> str:
    """What one warmup of ``config`` (an expanded experiment) warms, as a canonical string: its
    warmup block, plus its batch shape when ``per_shape`` (see the module docstring)."""
    workload = config.get("workload") or {}
    key: dict[str, Any] = {"warmup": config.get("warmup")}
    if per_shape:
        key["shape"] = {
            "batch_size": config.get("batch_size"),
            "input_tokens": workload.get("input_tokens"),
            "output_tokens": workload.get("output_tokens"),
            "workload": workload.get("kind"),
            "batching": config.get("batching"),
            "traffic": config.get("traffic"),
            "decoding": config.get("decoding"),
        }
    return json.dumps(key, sort_keys=True, default=str)
