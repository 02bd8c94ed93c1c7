"""Energy attribution by share of work under continuous batching (harness.window.workshare),
checked against hand-computed cases."""

from __future__ import annotations

import itertools

import pytest

from harness.window.phases import attribute, request_energies
from harness.window.workshare import (
    ENGINE_SCHEDULED,
    MIXED,
    SUBMITTED,
    RequestSpan,
    share_work,
)


def constant_series(power_w: float, duration_s: float, step_s: float = 0.5):
    """Timeline samples of a constant power: cumulative energy = power x t."""
    n = round(duration_s / step_s)
    return [{"t_s": i * step_s, "energy_j": {"gpu": power_w * i * step_s}} for i in range(n + 1)]


# Two requests on an engine running at 100 W for 10 s (1000 J):
# A: submitted and scheduled at 0, first token at 1, last at 10; 100 prompt tokens, 91 output
#    tokens, so 90 decode tokens over 9 s (10 tok/s).
# B: submitted at 1, queued until the engine schedules it at 5, first token at 6, last at 10;
#    100 prompt tokens, 41 output tokens: 40 decode tokens over 4 s (10 tok/s).
A = RequestSpan(0.0, 0.0, 1.0, 10.0, 100, 91)
B = RequestSpan(1.0, 5.0, 6.0, 10.0, 100, 41)


def test_queue_time_is_not_prefill_hand_computed():
    # [0,1] A prefill alone: 100 J prefill. [1,5] A decodes, B only queued: 400 J decode.
    # [5,6] A decodes at 10 tok/s, B prefills at 100 tok/s: prefill 100 x 100/110, decode
    # 100 x 10/110. [6,10] both decode: 400 J decode.
    phases = attribute(constant_series(100.0, 10.0), [], 10.0, 0.0, 1000.0, ["gpu"], None, [A, B])
    assert phases.attribution == ENGINE_SCHEDULED
    assert phases.prefill_j == pytest.approx(100 + 100 * 100 / 110)  # 190.9 J
    assert phases.decode_j == pytest.approx(400 + 100 * 10 / 110 + 400)  # 809.1 J
    assert phases.other_j == pytest.approx(0.0, abs=1e-9)
    assert phases.closure_ok


def test_old_union_rule_counted_the_queue_as_prefill():
    # The static-batch rule on the same run: prefill = [0,1] u [1,6] = 600 J. The work-share
    # figure above (190.9 J) is what the engine did; this pins the difference.
    spans = [(0.0, 1.0, 10.0), (1.0, 6.0, 10.0)]
    old = attribute(constant_series(100.0, 10.0), spans, 10.0, 0.0, 1000.0, ["gpu"])
    assert old.prefill_j == pytest.approx(600.0)
    assert old.attribution == "batch_spans"


def test_without_engine_times_queue_is_shared_by_token_rate():
    # B's prefill spans [1,6] (submission to first token): 100 tokens / 5 s = 20 tok/s beside
    # A's 10 tok/s decode, so [1,6] (500 J) splits 2/3 prefill, 1/3 decode.
    b = RequestSpan(1.0, None, 6.0, 10.0, 100, 41)
    phases = attribute(constant_series(100.0, 10.0), [], 10.0, 0.0, 1000.0, ["gpu"], None, [A, b])
    assert phases.attribution == MIXED
    assert phases.prefill_j == pytest.approx(100 + 500 * 2 / 3)
    assert phases.decode_j == pytest.approx(500 / 3 + 400)


def test_idle_and_other_close_the_window():
    # 100 W for 12 s, 40 W idle; one request [2, 3] prefill, [3, 10] decode; nothing in [0,2]
    # and [10,12]: other = 4 s x 60 W.
    r = RequestSpan(2.0, None, 3.0, 10.0, 10, 8)
    phases = attribute(constant_series(100.0, 12.0), [], 12.0, 40.0, 1200.0, ["gpu"], None, [r])
    assert phases.attribution == SUBMITTED
    assert phases.prefill_j == pytest.approx(60.0)
    assert phases.decode_j == pytest.approx(420.0)
    assert phases.other_j == pytest.approx(240.0)
    assert phases.idle_j == pytest.approx(480.0)
    assert phases.closure_rel_error == pytest.approx(0.0, abs=1e-12)


def test_per_request_energy_hand_computed():
    work = request_energies(constant_series(100.0, 10.0), [A, B], 10.0, 0.0, 1000.0, ["gpu"])
    # A: 100 (prefill) + 400 + 100 x 10/110 + 200 (half of [6,10]); B: 100 x 100/110 + 200.
    assert work.request_gross_j == pytest.approx([700 + 1000 / 110, 200 + 10000 / 110])
    assert sum(work.request_gross_j) == pytest.approx(1000.0)
    assert work.request_net_j == pytest.approx(work.request_gross_j)


def test_per_request_net_subtracts_idle_by_the_same_shares():
    # 100 W, 50 W idle, two identical requests side by side over the whole window.
    r = RequestSpan(0.0, 0.0, 1.0, 4.0, 10, 4)
    work = share_work(lambda t: 100.0 * t, [r, r], 4.0, 50.0)
    assert work.request_gross_j == pytest.approx([200.0, 200.0])
    assert work.request_net_j == pytest.approx([100.0, 100.0])


def test_spans_outside_the_window_keep_their_rate():
    # A request decoding over [-2, 2] (10 tokens + 1): 2.5 tok/s; only [0, 2] lies inside and gets
    # its share beside another request decoding 5 tok/s in [0, 2].
    r1 = RequestSpan(-3.0, -3.0, -2.0, 2.0, 1, 11)
    r2 = RequestSpan(0.0, 0.0, 0.0, 2.0, 1, 11)
    work = share_work(lambda t: 30.0 * t, [r1, r2], 2.0, 0.0)
    assert work.request_gross_j == pytest.approx([60.0 / 3, 60.0 * 2 / 3])


def _brute_force(energy, spans, duration_s, idle_w):
    """The definition, interval by interval: every piece's energy split over the segments running
    in it by token rate (quadratic; the reference for share_work's prefix sums)."""
    from harness.window.workshare import _segments

    segs = _segments(spans, duration_s)
    cuts = sorted({0.0, duration_s, *(s.a for s in segs), *(s.b for s in segs)})
    out = {"prefill": 0.0, "decode": 0.0, "other": 0.0}
    per = [0.0] * len(spans)
    for a, b in itertools.pairwise(cuts):
        e = energy(b) - energy(a) - idle_w * (b - a)
        running = [s for s in segs if s.a <= a and s.b >= b]
        total = sum(s.rate for s in running)
        if not running:
            out["other"] += e
        for s in running:
            out[s.phase] += e * s.rate / total
            per[s.request] += e * s.rate / total
    return out, per


def test_prefix_sums_match_the_definition_on_random_runs() -> None:
    import random

    rng = random.Random(7)
    spans = []
    for _ in range(60):
        start = rng.uniform(-1.0, 30.0)
        scheduled = None if rng.random() < 0.5 else start + rng.uniform(0.0, 5.0)
        first = (scheduled or start) + rng.uniform(0.01, 2.0)
        spans.append(RequestSpan(start, scheduled, first, first + rng.uniform(0.0, 10.0), 64, 33))

    def energy(t: float) -> float:
        return 100.0 * t + 20.0 * t * t  # rising power

    work = share_work(energy, spans, 35.0, 30.0)
    phases, per = _brute_force(energy, spans, 35.0, 30.0)
    assert work.prefill_j == pytest.approx(phases["prefill"], rel=1e-9)
    assert work.decode_j == pytest.approx(phases["decode"], rel=1e-9)
    assert work.other_j == pytest.approx(phases["other"], rel=1e-9, abs=1e-9)
    assert work.request_net_j == pytest.approx(per, rel=1e-9, abs=1e-9)
    total_net = energy(35.0) - energy(0.0) - 30.0 * 35.0
    assert work.prefill_j + work.decode_j + work.other_j == pytest.approx(total_net, rel=1e-12)
