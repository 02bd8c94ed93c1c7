"""How busy the host was: a clean host, or a loud warning.

The same quickstart gave 11-28x different J/token on a busy host than on a quiet one, with no
warning: the estimate meters model the whole CPU's load, RAPL measures the whole package, and other
processes slow the window down. So every window records (the result's ``host_load`` block):

- the CPU time of other processes during the window: system-wide busy CPU time (psutil
  ``cpu_times``: user + nice + system + irq + softirq; steal and guest time are not this host's
  work) minus this process tree's own CPU time, as a share of the window x the CPU count;
- the GPU processes that are not ours (from the telemetry's process list, as the device layer
  gives it; None without GPUs);
- the CPU load measured just before the idle baseline (psutil ``cpu_percent`` over a short
  probe), which also decides whether a cached baseline may be reused (``harness.window.baseline``).

A host is busy when other processes used at least ``BUSY_CPU_PCT`` of all cores during the window
or before the baseline, or when other processes compute on the measured GPUs; a busy host gets the
``busy_host`` warning with the figures. Plain inputs in, plain outputs out, so the device layer can
feed it whatever process list it has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: Other processes using at least this share of all cores (%) make the host busy.
BUSY_CPU_PCT = 20.0
#: Length of the CPU load probe before the idle baseline (s).
LOAD_PROBE_S = 0.5


@dataclass(frozen=True)
class CpuSnapshot:
    """System-wide busy CPU time and this process tree's CPU time at one instant."""

    busy_s: float  # all processes, all cores
    own_s: float  # this process and its children
    t: float  # perf_counter


@dataclass(frozen=True)
class HostLoad:
    """The result's ``host_load`` block."""

    cpu_count: int
    load_before_baseline_pct: float | None
    other_cpu_s: float | None
    other_cpu_pct: float | None
    own_cpu_s: float | None
    window_s: float
    other_gpu_processes: int | None
    busy: bool
    threshold_pct: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _busy_seconds(times: Any) -> float:
    """Busy CPU time of a psutil ``cpu_times()`` tuple. guest time is already in user time on
    Linux, and steal time is another guest's, so neither is added."""
    return sum(float(getattr(times, f, 0.0)) for f in ("user", "nice", "system", "irq", "softirq"))


def _own_seconds(ps: Any) -> float:
    """CPU time of this process, its reaped children and its live descendants."""
    proc = ps.Process()
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
        except (ps.NoSuchProcess, ps.AccessDenied):  # ended or hidden meanwhile
            continue
        total += c.user + c.system
    return float(total)


def cpu_snapshot(
    ps: Any = None, clock: Callable[[], float] = time.perf_counter
) -> CpuSnapshot | None:
    """A snapshot now; None when psutil cannot read the CPU times here."""
    if ps is None:
        import psutil as ps
    try:
        return CpuSnapshot(_busy_seconds(ps.cpu_times()), _own_seconds(ps), clock())
    except Exception:  # an odd /proc (some sandboxes): no figure rather than a failed window
        return None


def load_before_baseline(ps: Any = None, probe_s: float = LOAD_PROBE_S) -> float | None:
    """System-wide CPU utilisation (% of all cores) over ``probe_s``; None when unreadable."""
    if ps is None:
        import psutil as ps
    try:
        return float(ps.cpu_percent(interval=probe_s))
    except Exception:
        return None


def cpu_count(ps: Any = None) -> int:
    """Logical CPUs (at least 1)."""
    if ps is None:
        import psutil as ps
    return max(1, int(ps.cpu_count() or 1))


def other_gpu_processes(
    processes: Iterable[Mapping[str, Any]] | None, own_pids: Iterable[int]
) -> int | None:
    """How many GPU processes are not ours: ``Telemetry.processes()`` entries (``pid``, optional
    ``ours``). None without a process list (no GPU telemetry). Where none is ours, pids may not be
    comparable (a container's PID namespace) and nothing can be said: None."""
    if processes is None:
        return None
    own = set(own_pids)
    procs = list(processes)
    ours = [p for p in procs if p.get("ours") or p.get("pid") in own]
    if procs and not ours:
        return None
    return len(procs) - len(ours)


def host_load(
    before: CpuSnapshot | None,
    after: CpuSnapshot | None,
    *,
    cpus: int,
    window_s: float,
    load_before_pct: float | None,
    gpu_others: int | None,
    threshold_pct: float = BUSY_CPU_PCT,
) -> HostLoad:
    """The window's ``HostLoad`` from two snapshots around it and the figures measured before."""
    other_s = own_s = other_pct = None
    if before is not None and after is not None and window_s > 0:
        own_s = max(0.0, after.own_s - before.own_s)
        other_s = max(0.0, (after.busy_s - before.busy_s) - own_s)
        other_pct = 100.0 * other_s / (window_s * cpus)
    busy = bool(
        (other_pct is not None and other_pct >= threshold_pct)
        or (load_before_pct is not None and load_before_pct >= threshold_pct)
        or gpu_others
    )
    return HostLoad(
        cpu_count=cpus,
        load_before_baseline_pct=load_before_pct,
        other_cpu_s=other_s,
        other_cpu_pct=other_pct,
        own_cpu_s=own_s,
        window_s=window_s,
        other_gpu_processes=gpu_others,
        busy=busy,
        threshold_pct=threshold_pct,
    )


def busy_host_warning(load: HostLoad) -> dict[str, str] | None:
    """The ``busy_host`` warning (one line, with the figures), or None on a quiet host."""
    if not load.busy:
        return None
    found = []
    if load.other_cpu_pct is not None and load.other_cpu_pct >= load.threshold_pct:
        found.append(
            f"other processes used {load.other_cpu_s:.3g} CPU-s in the {load.window_s:.3g} s "
            f"window ({load.other_cpu_pct:.0f}% of {load.cpu_count} cores)"
        )
    if load.load_before_baseline_pct is not None and (
        load.load_before_baseline_pct >= load.threshold_pct
    ):
        found.append(
            f"the CPU load before the idle baseline was {load.load_before_baseline_pct:.0f}%"
        )
    if load.other_gpu_processes:
        found.append(f"{load.other_gpu_processes} GPU process(es) not ours")
    return {
        "code": "busy_host",
        "message": (
            f"the host was busy ({'; '.join(found)}; threshold {load.threshold_pct:g}%): energy "
            "and speed include other work; stop other load and re-run on a quiet host"
        ),
    }
