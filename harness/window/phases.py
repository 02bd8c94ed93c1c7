"""Per-phase energy attribution of one measured window: prefill, decode, other, idle.

Inputs are the timeline's cumulative energy series (``energy_j`` per domain, cumulative since the
window's start, one sample at ``t_s = 0`` and one at ``t_s = duration_s``) and each static batch's
``(t_start, t_first_token, t_end)`` relative to the window start. Prefill is
``[t_start, t_first_token]``, decode is ``[t_first_token, t_end]``.

The energy of an interval ``[a, b]`` is ``E(b) - E(a)``, ``E`` interpolated linearly on the
cumulative series summed over the domains. Because every part comes from one series of one window,
the parts add up to that window's energy by construction: prefill + decode + other + idle equals the
series' own total. (Subtracting separate runs, e.g. "decode = run with N tokens - run with 1 token",
has no such guarantee and yields negative decode energy when prefill dominates and varies between
runs.) ``closure_rel_error`` then compares that sum with the meters' window total, which catches a
series that disagrees with the meters (a wrong sample, a counter that wrapped, a missing domain).

Net energies subtract the idle baseline: ``net = gross - idle_power_w x length``; ``idle_j`` is the
idle power over the whole window. Nothing is clamped: a baseline above the window's mean power gives
negative net energies, which the caller reports (``harness.window.checks.negative_net_energy``).

Domains without a series (an estimate meter such as codecarbon cannot be read mid-window) are split
by time share: each part gets ``length / duration_s`` of that domain's window total. ``method``
says which was used: ``"timeline"``, ``"time_share"`` or ``"timeline+time_share"``.

Overlapping intervals (several batches in flight: not the case for static batches) are attributed
once: prefill is the union of prefill intervals, decode the union of decode intervals minus prefill
time (where a prefill overlaps another batch's decode, the time counts as prefill: the GPU's work
there is dominated by the prompt's compute), other is the rest of the window. A batch without a
first token (``t_first_token`` None: nothing generated) counts as prefill up to its end.
``attribution`` is then ``"batch_spans"``.

Under traffic (continuous batching) that union would count queue time as prefill. Given
``requests`` (``harness.window.workshare.RequestSpan``), the split is by share of work instead
(tokens in flight per timeline interval, prefill starting where the engine scheduled the request
when it says so); ``attribution`` then names the source (``work_share:...``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.window.workshare import RequestSpan, WorkShare, share_work

#: Closure tolerance: the parts must add up to the meters' total within this relative error.
CLOSURE_TOLERANCE = 0.01

TIMELINE = "timeline"
TIME_SHARE = "time_share"
#: ``Phases.attribution`` of the static-batch rule (union of per-batch spans).
BATCH_SPANS = "batch_spans"

Interval = tuple[float, float]


@dataclass
class Phases:
    """Energy of one window split into phases (J). Net values are idle-subtracted, not clamped."""

    method: str  # "timeline" | "time_share" | "timeline+time_share"
    prefill_j: float  # net energy attributed to prefill intervals
    decode_j: float  # net energy attributed to decode intervals
    other_j: float  # net energy in the window outside any phase (gaps between batches)
    idle_j: float  # idle power x window duration (0 without a baseline)
    total_j: float  # the meters' window total (gross) the parts must add up to
    closure_rel_error: float  # |prefill + decode + other + idle - total| / total
    attribution: str = BATCH_SPANS  # how the phase spans were found (see the module docstring)

    @property
    def closure_ok(self) -> bool | None:
        """The parts add up to the meters' total within ``CLOSURE_TOLERANCE`` (1 %); None when
        the split is by time share only: its parts add up by construction, so closure cannot
        fail and is no check of anything (CPU estimates without a readable timeline)."""
        if self.method == TIME_SHARE:
            return None
        return self.closure_rel_error <= CLOSURE_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        """The result's ``energy.phases`` object: the fields plus ``closure_ok``."""
        return {**asdict(self), "closure_ok": self.closure_ok}


def _union(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering the same time as ``intervals`` (empty ones dropped)."""
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _subtract(minuend: list[Interval], subtrahend: list[Interval]) -> list[Interval]:
    """``minuend`` minus ``subtrahend``; both sorted and disjoint (``_union`` output)."""
    out: list[Interval] = []
    for a, b in minuend:
        start = a
        for c, d in subtrahend:
            if d <= start or c >= b:
                continue
            if c > start:
                out.append((start, c))
            start = max(start, d)
            if start >= b:
                break
        if start < b:
            out.append((start, b))
    return out


def _length(intervals: list[Interval]) -> float:
    return math.fsum(b - a for a, b in intervals)


class _Series:
    """A cumulative energy series of one domain, linearly interpolated, flat outside its range."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        points.sort(key=lambda p: p[0])
        self.t = [p[0] for p in points]
        self.e = [p[1] for p in points]

    def __call__(self, t: float) -> float:
        if t <= self.t[0]:
            return self.e[0]
        if t >= self.t[-1]:
            return self.e[-1]
        i = bisect.bisect_right(self.t, t)  # t[i-1] <= t < t[i]
        t0, t1, e0, e1 = self.t[i - 1], self.t[i], self.e[i - 1], self.e[i]
        return e0 + (e1 - e0) * (t - t0) / (t1 - t0)


def _series(samples: list[dict[str, Any]], domain: str) -> _Series | None:
    """The domain's series, or None when fewer than two samples carry it."""
    points = []
    for s in samples:
        value = (s.get("energy_j") or {}).get(domain)
        if isinstance(value, int | float) and not isinstance(value, bool):
            points.append((float(s["t_s"]), float(value)))
    return _Series(points) if len(points) >= 2 else None


def _phase_intervals(
    batches: Sequence[tuple[float, float | None, float]], duration_s: float
) -> tuple[list[Interval], list[Interval], list[Interval]]:
    """(prefill, decode, other) as disjoint interval lists clipped to [0, duration_s]."""

    def clip(a: float, b: float) -> Interval:
        return (min(max(a, 0.0), duration_s), min(max(b, 0.0), duration_s))

    prefill, decode = [], []
    for t_start, t_first, t_end in batches:
        if t_first is None:
            prefill.append(clip(t_start, t_end))
            continue
        prefill.append(clip(t_start, t_first))
        decode.append(clip(t_first, t_end))
    p = _union(prefill)
    d = _subtract(_union(decode), p)
    other = _subtract([(0.0, duration_s)], _union(p + d)) if duration_s > 0 else []
    return p, d, other


@dataclass(frozen=True)
class WindowEnergy:
    """The window's gross cumulative energy as a function of time, over the given domains."""

    method: str  # "timeline" | "time_share" | "timeline+time_share"
    series: dict[str, _Series]
    shared_total_j: float  # window total of the domains without a series (split by time share)
    duration_s: float

    def __call__(self, t: float) -> float:
        """Gross energy (J) from the window start to ``t``: sampled domains interpolated, the
        others at a constant rate over the window."""
        value = math.fsum(s(t) - s(0.0) for s in self.series.values())
        if self.shared_total_j and self.duration_s > 0:
            value += self.shared_total_j * min(max(t, 0.0), self.duration_s) / self.duration_s
        return value


def window_energy(
    samples: list[dict[str, Any]],
    duration_s: float,
    total_j: float,
    domains: list[str],
    domain_totals_j: dict[str, float] | None = None,
) -> WindowEnergy:
    """The window's cumulative energy from its timeline (see ``attribute`` for the arguments)."""
    series = {d: s for d in domains if (s := _series(samples, d)) is not None}
    shared = [d for d in domains if d not in series]
    methods = [m for m, used in ((TIMELINE, series), (TIME_SHARE, shared or not series)) if used]
    series_total = math.fsum(s(duration_s) - s(0.0) for s in series.values())
    if domain_totals_j is not None:
        shared_total = math.fsum(domain_totals_j.get(d) or 0.0 for d in shared)
    else:
        shared_total = max(total_j - series_total, 0.0) if shared else 0.0
    return WindowEnergy("+".join(methods), series, shared_total, duration_s)


def request_energies(
    samples: list[dict[str, Any]],
    requests: list[RequestSpan],
    duration_s: float,
    idle_power_w: float,
    total_j: float,
    domains: list[str],
    domain_totals_j: dict[str, float] | None = None,
) -> WorkShare:
    """Per-request (and per-phase) energy by share of work (``harness.window.workshare``)."""
    energy = window_energy(samples, duration_s, total_j, domains, domain_totals_j)
    return share_work(energy, requests, duration_s, idle_power_w)


def attribute(
    samples: list[dict[str, Any]],
    batches: list[tuple[float, float, float]],
    duration_s: float,
    idle_power_w: float,
    total_j: float,
    domains: list[str],
    domain_totals_j: dict[str, float] | None = None,
    requests: list[RequestSpan] | None = None,
) -> Phases:
    """Split one window's energy into prefill, decode, other and idle (see the module docstring).

    ``samples``: timeline samples (``t_s`` relative to the window start, ``energy_j`` cumulative per
    domain). ``batches``: per static batch ``(t_start, t_first_token, t_end)`` relative to the
    window start. ``idle_power_w``: idle power summed over ``domains`` (0 without a baseline).
    ``total_j``: the meters' gross window total over ``domains``. ``domain_totals_j`` (optional):
    the meters' total per domain; time-share domains then use their own totals, and closure checks
    the series against the meters. Without it, time-share domains get what the series leaves of
    ``total_j`` (never less than 0), so closure can only catch a series that exceeds the total.
    ``requests`` (optional, serving runs): split by share of work instead of ``batches``.
    """
    energy = window_energy(samples, duration_s, total_j, domains, domain_totals_j)
    idle_j = idle_power_w * duration_s if duration_s > 0 else 0.0
    if requests is not None:
        work = share_work(energy, requests, duration_s, idle_power_w)
        prefill_j, decode_j, other_j = work.prefill_j, work.decode_j, work.other_j
        attribution = work.attribution
    else:
        prefill, decode, other = _phase_intervals(batches, duration_s)

        def net(intervals: list[Interval]) -> float:
            gross = math.fsum(energy(b) - energy(a) for a, b in intervals)
            return gross - idle_power_w * _length(intervals)

        prefill_j, decode_j, other_j = net(prefill), net(decode), net(other)
        attribution = BATCH_SPANS
    parts = prefill_j + decode_j + other_j + idle_j
    if total_j != 0:
        error = abs(parts - total_j) / abs(total_j)
    else:
        # Nothing measured: closure holds only if the series says nothing either.
        error = 0.0 if abs(parts) < 1e-12 else 1.0
    return Phases(energy.method, prefill_j, decode_j, other_j, idle_j, total_j, error, attribution)
