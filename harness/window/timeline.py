"""The power timeline: cumulative energy and GPU/CPU telemetry sampled through a measured window.

A daemon thread takes a sample every ``interval_s`` while the window is open, plus one sample at
``start()`` (stamped 0.0) and one at ``stop()``. A sample (one JSON line in the timeline file)::

    {"t_s": 0.1003,                                   # seconds since the window's t0
     "energy_j": {"gpu": 12.3, "cpu": 4.5, "dram": 1.2},  # cumulative since the meters' start
     "power_w": {"gpu": 301.2},                       # NVML power, summed over GPUs
     "gpus": [{"id": "0", "power_w": ..., ...}],      # Telemetry.read(); [] without NVML
     "cpu_util_pct": 87.5}                            # machine-wide busy share since last sample

``energy_j`` holds the domains of meters that can be read mid-window (``Meter.read_cumulative``);
a meter that fails a read is missing from that one sample. ``cpu_util_pct`` comes from
``psutil.cpu_times()`` deltas (never ``psutil.cpu_percent``: codecarbon relies on its shared
state), None in the first sample; its resolution is one clock tick (1/100 s) per CPU per interval.

Scheduling aims at fixed deadlines ``t0 + k x interval_s``: late samples do not shift later ones,
and deadlines missed entirely (a stalled thread) are skipped, not caught up in a burst. Nothing
here raises into the measured work: a failed read is counted (``errors``, ``first_error``) and the
sampling goes on. The sampler's own CPU time is in ``stats()``.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from harness.hardware.telemetry import Telemetry
from harness.meters.base import Meter


def _busy_and_total(times: Any) -> tuple[float, float]:
    """(busy, total) CPU seconds of a ``psutil.cpu_times()`` tuple, as psutil's cpu_percent does."""
    total = sum(times)
    if sys.platform.startswith("linux"):
        # guest time is already counted in user/nice on Linux.
        total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class Timeline:
    """Samples energy and telemetry in a background thread over one measured window."""

    def __init__(
        self,
        meters: list[Meter],
        interval_s: float,
        telemetry: Telemetry | None,
        clock: Callable[[], float] = time.perf_counter,
        *,
        cpu_times: Callable[[], Any] = psutil.cpu_times,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        """``meters``: the window's meters (already constructed); ``interval_s``: sampling period;
        ``telemetry``: GPU telemetry or None; ``clock``: the protocol's clock (perf_counter).
        Tests may replace ``cpu_times`` (psutil's) and ``wait`` (sleep up to the given seconds;
        True once sampling should end; default: wait on the stop event)."""
        if not interval_s > 0:
            raise ValueError(f"timeline interval must be > 0 s, got {interval_s}")
        self.meters = list(meters)
        self.interval_s = float(interval_s)
        self.telemetry = telemetry
        self._clock = clock
        self._cpu_times = cpu_times
        self.samples: list[dict[str, Any]] = []
        #: Failed reads (any source) and the first one's message, for a warning.
        self.errors = 0
        self.first_error: str | None = None
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._prev_cpu: tuple[float, float] | None = None
        self._cpu_s = 0.0  # CPU time spent sampling (thread time, both threads)
        self._started_at = 0.0
        self._stopped_at = 0.0
        self._state = "new"

    # -- public API ---------------------------------------------------------------------------
    def start(self, t0: float) -> None:
        """Take the first sample (t_s 0.0) and start sampling; call right after the meters start,
        with the window's t0."""
        if self._state != "new":
            raise RuntimeError(f"timeline already {self._state}")
        self._state = "running"
        self._t0 = t0
        self._started_at = self._clock()
        self._prev_cpu = self._read_cpu()
        self._sample(at_start=True)
        self._thread = threading.Thread(target=self._run, name="lembench-timeline", daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        """Stop the thread, take the last sample and return all samples (call right before the
        meters stop). Idempotent; [] when never started."""
        if self._state != "running":
            return self.samples
        self._state = "stopped"
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._stopped_at = self._clock()
        return self.samples

    def fields(self) -> list[str]:
        """Dotted names of what the samples hold, e.g. ["t_s", "energy_j.gpu", "power_w.gpu",
        "gpus", "cpu_util_pct"] (for the result's ``timeline.fields``)."""
        names = {"t_s"}
        for s in self.samples:
            names.update(f"energy_j.{d}" for d in s["energy_j"])
            names.update(f"power_w.{d}" for d in s["power_w"])
            if s["gpus"]:
                names.add("gpus")
            if s["cpu_util_pct"] is not None:
                names.add("cpu_util_pct")
        order = ["t_s", "energy_j", "power_w", "gpus", "cpu_util_pct"]
        return sorted(names, key=lambda n: (order.index(n.split(".")[0]), n))

    def stats(self) -> dict[str, Any]:
        """How the sampling went: samples, errors, achieved rate, largest gap, sampler CPU time."""
        times = [s["t_s"] for s in self.samples]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        span = self._stopped_at - self._started_at
        return {
            "samples": len(self.samples),
            "interval_s": self.interval_s,
            "achieved_hz": (len(self.samples) - 1) / span if span > 0 else None,
            "max_gap_s": max(gaps) if gaps else None,
            "errors": self.errors,
            "first_error": self.first_error,
            "sampler_cpu_s": self._cpu_s,
        }

    # -- sampling -----------------------------------------------------------------------------
    def _run(self) -> None:
        cpu0 = time.thread_time()
        k = 1
        while True:
            delay = self._t0 + k * self.interval_s - self._clock()
            if self._wait(max(0.0, delay)) or self._stop.is_set():
                break
            self._sample(timed=False)
            k = next_deadline(k, self._clock() - self._t0, self.interval_s)
        self._cpu_s += time.thread_time() - cpu0

    def _error(self, source: str, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{source}: {type(exc).__name__}: {exc}"

    def _read_cpu(self) -> tuple[float, float] | None:
        try:
            return _busy_and_total(self._cpu_times())
        except Exception as exc:
            self._error("cpu_times", exc)
            return None

    def _sample(self, *, at_start: bool = False, timed: bool = True) -> None:
        """Take one sample; never raises (the measured work must not be disturbed)."""
        cpu0 = time.thread_time() if timed else 0.0
        try:
            self._take(at_start)
        except Exception as exc:  # a bug here must not end the window either
            self._error("timeline", exc)
        if timed:
            self._cpu_s += time.thread_time() - cpu0

    def _take(self, at_start: bool) -> None:
        t = self._clock()
        energy: dict[str, float] = {}
        for meter in self.meters:
            try:
                values = meter.read_cumulative()
            except Exception as exc:
                self._error(f"meter {meter.name}", exc)
                continue
            if values:
                energy.update({k: round(float(v), 6) for k, v in values.items()})
        gpus: list[dict[str, Any]] = []
        power: dict[str, float] = {}
        if self.telemetry is not None:
            try:
                gpus = self.telemetry.read()
            except Exception as exc:
                self._error("telemetry", exc)
            watts = [g["power_w"] for g in gpus]
            if watts and None not in watts:
                power["gpu"] = round(sum(watts), 3)
        util = None
        cpu = self._read_cpu()
        if cpu is not None and self._prev_cpu is not None:
            busy = cpu[0] - self._prev_cpu[0]
            total = cpu[1] - self._prev_cpu[1]
            if total > 0 and not at_start:
                util = round(min(100.0, max(0.0, 100.0 * busy / total)), 2)
        if cpu is not None:
            self._prev_cpu = cpu
        t_s = 0.0 if at_start else max(0.0, t - self._t0)
        if self.samples:
            t_s = max(t_s, self.samples[-1]["t_s"])  # never backwards
        self.samples.append(
            {
                "t_s": round(t_s, 6),
                "energy_j": energy,
                "power_w": power,
                "gpus": gpus,
                "cpu_util_pct": util,
            }
        )


def next_deadline(k: int, elapsed_s: float, interval_s: float) -> int:
    """Index of the next sampling deadline (``t0 + index x interval_s``) after deadline ``k`` was
    served at ``elapsed_s``: the first one still in the future, so a stall skips deadlines instead
    of catching up in a burst, and a late sample does not shift the later ones."""
    return max(k + 1, math.floor(elapsed_s / interval_s) + 1)
