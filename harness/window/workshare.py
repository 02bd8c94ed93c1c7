"""Energy attribution by share of work: phases and per-request energy under continuous batching.

Under traffic a serving engine runs many requests at once and queues the rest. Splitting the
window by the union of "submission to first token" spans (``harness.window.phases``' rule for
static batches) counts every second in which *some* request waits for its first token as prefill,
queue time included: with a busy engine nearly the whole window becomes "prefill" although the
engine spends it decoding. This module attributes energy from what the engine did instead.

Each request contributes two work segments (times relative to the window start):

- prefill: ``tokens_in`` prompt tokens, spread evenly over ``[t_scheduled, t_first_token]``;
  ``t_scheduled`` is when the engine says it took the request out of its queue. Where the engine
  does not report it, the segment starts at submission (``t_start``): queued time is then shared
  with the work really running, at the low token rate a long wait gives it, never all of it.
- decode: ``tokens_out - 1`` output tokens (the first token comes out of the prefill step) spread
  evenly over ``[t_first_token, t_end]``.

The window is cut at every segment boundary. In each piece the net energy (gross from the power
timeline minus idle power x length) is shared among the segments running in it in proportion to
their token rates (tokens in flight per second): a prefill of 512 tokens in 0.1 s outweighs one
decoding request's 1 token per 20 ms. Pieces where no work runs (nothing in flight, or requests
only queued) are ``other``. So prefill + decode + other + idle is the window's energy by
construction, the closure rule of ``harness.window.phases`` holds unchanged.

The same shares give each request its energy (gross and net): the sum of its segments' shares.
That makes ``j_per_request`` a distribution (p50/p90/p99), not only the window total / requests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: ``Phases.attribution`` values: where the prefill span of each request comes from.
ENGINE_SCHEDULED = "work_share:engine_scheduled"  # every request's scheduled time from the engine
SUBMITTED = "work_share:submitted"  # no engine times: prefill spans start at submission
MIXED = "work_share:engine_scheduled+submitted"  # some requests have engine times, some not


@dataclass(frozen=True)
class RequestSpan:
    """One request's times relative to the window start (s) and its token counts."""

    t_start: float
    t_scheduled: float | None
    t_first_token: float | None
    t_end: float
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True)
class WorkShare:
    """Net energy per phase and gross/net energy per request (J) of one window."""

    attribution: str
    prefill_j: float
    decode_j: float
    other_j: float
    request_gross_j: list[float]
    request_net_j: list[float]


@dataclass(frozen=True)
class _Segment:
    request: int
    phase: str  # "prefill" | "decode"
    a: float
    b: float
    rate: float  # tokens per second


def attribution_of(spans: Sequence[RequestSpan]) -> str:
    """Which source the prefill spans came from (``ENGINE_SCHEDULED``, ``SUBMITTED``, ``MIXED``)."""
    known = sum(1 for s in spans if s.t_scheduled is not None)
    if spans and known == len(spans):
        return ENGINE_SCHEDULED
    return MIXED if known else SUBMITTED


def _segments(spans: Sequence[RequestSpan], duration_s: float) -> list[_Segment]:
    def clip(t: float) -> float:
        return min(max(t, 0.0), duration_s)

    out: list[_Segment] = []
    for i, s in enumerate(spans):
        start = s.t_start if s.t_scheduled is None else max(s.t_scheduled, s.t_start)
        first = s.t_end if s.t_first_token is None else s.t_first_token
        parts = [("prefill", start, first, float(max(s.tokens_in, 1)))]
        if s.t_first_token is not None:
            parts.append(("decode", s.t_first_token, s.t_end, float(max(s.tokens_out - 1, 0))))
        for phase, a, b, tokens in parts:
            # Rates come from the unclipped span: clipping to the window must not concentrate the
            # request's tokens into the part that lies inside it.
            if b > a and tokens > 0 and clip(b) > clip(a):
                out.append(_Segment(i, phase, clip(a), clip(b), tokens / (b - a)))
    return out


def share_work(
    energy: Callable[[float], float],
    spans: Sequence[RequestSpan],
    duration_s: float,
    idle_power_w: float,
) -> WorkShare:
    """Attribute one window's energy by share of work (see the module docstring).

    ``energy(t)``: gross cumulative energy at ``t`` s from the window start (all domains); the
    window's gross total is ``energy(duration_s) - energy(0)``. ``idle_power_w``: idle power over
    the same domains (0 without a baseline)."""
    segments = _segments(spans, duration_s)
    cuts = sorted({0.0, duration_s, *(s.a for s in segments), *(s.b for s in segments)})
    index = {t: k for k, t in enumerate(cuts)}
    # Running token rate and segment count per interval [cuts[k], cuts[k+1]], by a sweep.
    delta_rate = [0.0] * len(cuts)
    delta_count = [0] * len(cuts)
    for s in segments:
        delta_rate[index[s.a]] += s.rate
        delta_rate[index[s.b]] -= s.rate
        delta_count[index[s.a]] += 1
        delta_count[index[s.b]] -= 1
    # A segment's share of interval k is rate / R_k, so its energy is its rate times the sum of
    # e_k / R_k over its intervals: prefix sums of e_k / R_k make that O(1) per segment.
    per_gross, per_net, other = [0.0], [0.0], []
    rate, count = 0.0, 0
    for k, (a, b) in enumerate(itertools.pairwise(cuts)):
        rate += delta_rate[k]
        count += delta_count[k]
        e_gross = energy(b) - energy(a)
        e_net = e_gross - idle_power_w * (b - a)
        if count <= 0 or rate <= 0:
            other.append(e_net)
            per_gross.append(per_gross[-1])
            per_net.append(per_net[-1])
        else:
            per_gross.append(per_gross[-1] + e_gross / rate)
            per_net.append(per_net[-1] + e_net / rate)
    phase: dict[str, list[float]] = {"prefill": [], "decode": []}
    gross: list[list[float]] = [[] for _ in spans]
    net: list[list[float]] = [[] for _ in spans]
    for s in segments:
        a, b = index[s.a], index[s.b]
        g, n = s.rate * (per_gross[b] - per_gross[a]), s.rate * (per_net[b] - per_net[a])
        phase[s.phase].append(n)
        gross[s.request].append(g)
        net[s.request].append(n)
    return WorkShare(
        attribution=attribution_of(spans),
        prefill_j=math.fsum(phase["prefill"]),
        decode_j=math.fsum(phase["decode"]),
        other_j=math.fsum(other),
        request_gross_j=[math.fsum(g) for g in gross],
        request_net_j=[math.fsum(n) for n in net],
    )
