"""Per-phase energy attribution (harness.window.phases), checked against hand-computed values."""

from __future__ import annotations

import pytest

from harness.window.phases import Phases, attribute


def constant_series(power_w: float, duration_s: float, step_s: float = 0.1, domain: str = "gpu"):
    """Timeline samples of a constant power: cumulative energy = power x t."""
    n = round(duration_s / step_s)
    return [{"t_s": i * step_s, "energy_j": {domain: power_w * i * step_s}} for i in range(n + 1)]


def piecewise_series(segments: list[tuple[float, float, float]], step_s: float = 0.5):
    """Samples of a piecewise-constant power [(t_from, t_to, watts)] on a uniform grid of step_s
    from 0 to the last segment's end (edges on the grid are sampled exactly)."""
    end = segments[-1][1]

    def cumulative(t: float) -> float:
        return sum(w * (min(t, b) - a) for a, b, w in segments if t > a)

    times = [round(k * step_s, 9) for k in range(round(end / step_s) + 1)]
    return [{"t_s": t, "energy_j": {"gpu": cumulative(t)}} for t in times]


def test_constant_power_one_batch_hand_computed():
    # 100 W for 10 s, one batch: prefill [1, 2], decode [2, 9]; idle 40 W.
    samples = constant_series(100.0, 10.0)
    phases = attribute(samples, [(1.0, 2.0, 9.0)], 10.0, 40.0, 1000.0, ["gpu"])
    assert phases.method == "timeline"
    assert phases.prefill_j == pytest.approx(60.0)  # 1 s x (100 - 40) W
    assert phases.decode_j == pytest.approx(420.0)  # 7 s x 60 W
    assert phases.other_j == pytest.approx(120.0)  # (10 - 8) s x 60 W
    assert phases.idle_j == pytest.approx(400.0)  # 10 s x 40 W
    assert phases.total_j == 1000.0
    assert phases.closure_rel_error == pytest.approx(0.0, abs=1e-12)
    assert phases.closure_ok


def test_interpolates_between_samples():
    # Samples only at 0 and 10 s (the start and stop samples): bounds fall between them.
    samples = [{"t_s": 0.0, "energy_j": {"gpu": 0.0}}, {"t_s": 10.0, "energy_j": {"gpu": 1000.0}}]
    phases = attribute(samples, [(1.25, 2.5, 9.75)], 10.0, 0.0, 1000.0, ["gpu"])
    assert phases.prefill_j == pytest.approx(125.0)
    assert phases.decode_j == pytest.approx(725.0)
    assert phases.other_j == pytest.approx(150.0)


def test_step_power_attributes_each_phase_its_own_power():
    # Prefill [0, 2] at 300 W, decode [2, 8] at 150 W, a gap [8, 10] at 50 W; idle 50 W.
    samples = piecewise_series([(0.0, 2.0, 300.0), (2.0, 8.0, 150.0), (8.0, 10.0, 50.0)])
    total = 300 * 2 + 150 * 6 + 50 * 2
    phases = attribute(samples, [(0.0, 2.0, 8.0)], 10.0, 50.0, total, ["gpu"])
    assert phases.prefill_j == pytest.approx(2 * (300 - 50))
    assert phases.decode_j == pytest.approx(6 * (150 - 50))
    assert phases.other_j == pytest.approx(0.0, abs=1e-9)
    assert phases.idle_j == pytest.approx(500.0)
    assert phases.closure_ok


def test_step_between_samples_is_blurred_linearly_but_closes():
    # The step from 300 W to 150 W at t=2.05 falls between the samples at 2.0 and 2.5:
    # E(2.0) = 600, E(2.5) = 615 + 150 x 0.45 = 682.5, so E(2.05) interpolates to 608.25 (true 615).
    samples = piecewise_series([(0.0, 2.05, 300.0), (2.05, 4.0, 150.0)], step_s=0.5)
    total = 300 * 2.05 + 150 * 1.95
    phases = attribute(samples, [(0.0, 2.05, 4.0)], 4.0, 0.0, total, ["gpu"])
    assert phases.prefill_j == pytest.approx(608.25)
    assert phases.decode_j == pytest.approx(total - 608.25)
    assert phases.closure_rel_error == pytest.approx(0.0, abs=1e-12)


def test_several_batches_with_gaps():
    # 100 W throughout; batches [0.5, 1, 3] and [4, 4.5, 6.5]: prefill 1 s, decode 4.5 s.
    samples = constant_series(100.0, 8.0)
    phases = attribute(samples, [(0.5, 1.0, 3.0), (4.0, 4.5, 6.5)], 8.0, 20.0, 800.0, ["gpu"])
    assert phases.prefill_j == pytest.approx(1.0 * 80)
    assert phases.decode_j == pytest.approx(4.0 * 80)
    assert phases.other_j == pytest.approx(3.0 * 80)
    assert phases.idle_j == pytest.approx(160.0)
    assert phases.closure_rel_error == pytest.approx(0.0, abs=1e-12)


def test_large_batch_prefill_share_never_makes_decode_negative():
    # A large batch: prefill [0, 8] at 400 W dominates, decode [8, 9] at 200 W; idle 40 W.
    window = piecewise_series([(0.0, 8.0, 400.0), (8.0, 9.0, 200.0)], step_s=0.1)
    total = 400 * 8 + 200 * 1
    phases = attribute(window, [(0.0, 8.0, 9.0)], 9.0, 40.0, total, ["gpu"])
    assert phases.decode_j == pytest.approx(200 - 40)
    assert phases.decode_j > 0
    assert phases.closure_ok
    # Subtracting a separate prefill-only run (one output token) from the full run instead: that
    # run's prefill took 8.6 s (run-to-run variation of 7 %), more than the whole decode's energy.
    prefill_only_run = 400 * 8.6
    assert total - prefill_only_run < 0  # the subtraction method's "decode energy" is negative


def test_overlapping_intervals_are_attributed_once():
    # Two batches in flight: [0, 1, 5] and [2, 3, 6]; prefill [2, 3] overlaps batch 0's decode.
    samples = constant_series(100.0, 8.0)
    phases = attribute(samples, [(0.0, 1.0, 5.0), (2.0, 3.0, 6.0)], 8.0, 0.0, 800.0, ["gpu"])
    assert phases.prefill_j == pytest.approx(200.0)  # [0, 1] + [2, 3]
    assert phases.decode_j == pytest.approx(400.0)  # [1, 6] minus [2, 3]
    assert phases.other_j == pytest.approx(200.0)  # [6, 8]
    assert phases.closure_ok


def test_identical_batches_are_not_double_counted():
    samples = constant_series(100.0, 4.0)
    phases = attribute(samples, [(0.0, 1.0, 3.0)] * 3, 4.0, 0.0, 400.0, ["gpu"])
    assert (phases.prefill_j, phases.decode_j) == pytest.approx((100.0, 200.0))


def test_intervals_are_clipped_to_the_window():
    samples = constant_series(100.0, 4.0)
    phases = attribute(samples, [(-0.5, 1.0, 5.0)], 4.0, 0.0, 400.0, ["gpu"])
    assert (phases.prefill_j, phases.decode_j, phases.other_j) == pytest.approx((100, 300, 0))


def test_batch_without_first_token_counts_as_prefill():
    samples = constant_series(100.0, 4.0)
    phases = attribute(samples, [(1.0, None, 2.0)], 4.0, 0.0, 400.0, ["gpu"])
    assert (phases.prefill_j, phases.decode_j, phases.other_j) == pytest.approx((100, 0, 300))


def test_domains_are_summed():
    samples = [
        {"t_s": t, "energy_j": {"gpu": 100.0 * t, "cpu": 30.0 * t, "dram": 5.0 * t}}
        for t in (0.0, 1.0, 2.0, 3.0, 4.0)
    ]
    phases = attribute(samples, [(0.0, 1.0, 4.0)], 4.0, 35.0, 540.0, ["gpu", "cpu", "dram"])
    assert phases.method == "timeline"
    assert phases.prefill_j == pytest.approx(135.0 - 35.0)
    assert phases.decode_j == pytest.approx(3 * 100.0)
    # Domains not asked for are ignored.
    gpu_only = attribute(samples, [(0.0, 1.0, 4.0)], 4.0, 0.0, 400.0, ["gpu"])
    assert gpu_only.prefill_j == pytest.approx(100.0)


def test_time_share_for_an_estimate_only_window():
    # codecarbon cannot be read mid-window: samples carry no energy at all.
    samples = [{"t_s": 0.0, "energy_j": {}}, {"t_s": 10.0, "energy_j": {}}]
    phases = attribute(samples, [(1.0, 2.0, 9.0)], 10.0, 20.0, 500.0, ["cpu", "dram"])
    assert phases.method == "time_share"
    assert phases.prefill_j == pytest.approx(500 * 0.1 - 20)
    assert phases.decode_j == pytest.approx(500 * 0.7 - 140)
    assert phases.other_j == pytest.approx(500 * 0.2 - 40)
    assert phases.idle_j == pytest.approx(200.0)
    # The parts add up by construction: closure cannot fail, so it is no check (null), not "ok".
    assert phases.closure_rel_error == 0.0 and phases.closure_ok is None
    assert phases.to_dict()["closure_ok"] is None


def test_time_share_without_samples():
    phases = attribute([], [(0.0, 1.0, 2.0)], 2.0, 0.0, 10.0, ["cpu"])
    assert phases.method == "time_share"
    assert (phases.prefill_j, phases.decode_j) == pytest.approx((5.0, 5.0))


def test_mixed_timeline_and_time_share():
    # GPU has a series (100 W), the cpu is an estimate of 200 J over the 10 s window.
    samples = constant_series(100.0, 10.0)
    phases = attribute(samples, [(0.0, 2.0, 10.0)], 10.0, 0.0, 1200.0, ["gpu", "cpu"])
    assert phases.method == "timeline+time_share"
    assert phases.prefill_j == pytest.approx(200.0 + 40.0)
    assert phases.decode_j == pytest.approx(800.0 + 160.0)
    assert phases.closure_ok


def test_mixed_with_domain_totals_detects_a_disagreeing_series():
    samples = constant_series(100.0, 10.0)
    totals = {"gpu": 1000.0, "cpu": 200.0}
    ok = attribute(samples, [(0.0, 2.0, 10.0)], 10.0, 0.0, 1200.0, ["gpu", "cpu"], totals)
    assert ok.closure_ok and ok.prefill_j == pytest.approx(240.0)
    # The meters say the GPU used 1300 J; the series says 1000 J.
    bad = attribute(
        samples,
        [(0.0, 2.0, 10.0)],
        10.0,
        0.0,
        1500.0,
        ["gpu", "cpu"],
        {"gpu": 1300.0, "cpu": 200.0},
    )
    assert not bad.closure_ok
    assert bad.closure_rel_error == pytest.approx(300 / 1500)


def test_mixed_without_domain_totals_catches_a_series_above_the_total():
    samples = constant_series(100.0, 10.0)  # 1000 J of GPU alone
    phases = attribute(samples, [(0.0, 2.0, 10.0)], 10.0, 0.0, 900.0, ["gpu", "cpu"])
    assert phases.closure_rel_error == pytest.approx(100 / 900)
    assert not phases.closure_ok


def test_closure_failure_when_total_disagrees_with_the_series():
    samples = constant_series(100.0, 10.0)  # the series says 1000 J
    phases = attribute(samples, [(1.0, 2.0, 9.0)], 10.0, 40.0, 1100.0, ["gpu"])
    assert phases.closure_rel_error == pytest.approx(100 / 1100)
    assert not phases.closure_ok
    # Within 1 %: fine.
    assert attribute(samples, [(1.0, 2.0, 9.0)], 10.0, 40.0, 1009.0, ["gpu"]).closure_ok


def test_series_not_reaching_the_window_end_fails_closure():
    samples = constant_series(100.0, 8.0)  # the last sample is at 8 s of a 10 s window
    phases = attribute(samples, [(1.0, 2.0, 9.0)], 10.0, 0.0, 1000.0, ["gpu"])
    assert phases.closure_rel_error == pytest.approx(0.2)


def test_negative_net_energy_is_not_clamped():
    # Idle baseline 120 W above the window's 100 W.
    samples = constant_series(100.0, 10.0)
    phases = attribute(samples, [(1.0, 2.0, 9.0)], 10.0, 120.0, 1000.0, ["gpu"])
    assert phases.prefill_j == pytest.approx(-20.0)
    assert phases.decode_j == pytest.approx(-140.0)
    assert phases.idle_j == pytest.approx(1200.0)
    assert phases.closure_ok


def test_no_baseline_means_zero_idle():
    phases = attribute(constant_series(50.0, 2.0), [(0.0, 1.0, 2.0)], 2.0, 0.0, 100.0, ["gpu"])
    assert phases.idle_j == 0.0
    assert (phases.prefill_j, phases.decode_j) == pytest.approx((50.0, 50.0))


def test_zero_total_and_zero_duration():
    empty = attribute([], [], 0.0, 0.0, 0.0, ["gpu"])
    assert empty.closure_rel_error == 0.0 and empty.closure_ok is None  # no series: time share
    assert (empty.prefill_j, empty.decode_j, empty.other_j, empty.idle_j) == (0, 0, 0, 0)
    # A series with energy but a total of 0: closure fails rather than dividing by zero.
    odd = attribute(constant_series(10.0, 1.0), [], 1.0, 0.0, 0.0, ["gpu"])
    assert odd.closure_ok is False


def test_unsorted_samples_and_missing_values():
    samples = [
        {"t_s": 10.0, "energy_j": {"gpu": 1000.0}},
        {"t_s": 5.0, "energy_j": {}},  # a sample where the meter could not be read
        {"t_s": 0.0, "energy_j": {"gpu": 0.0}},
        {"t_s": 5.0, "power_w": {"gpu": 100.0}},
    ]
    phases = attribute(samples, [(0.0, 5.0, 10.0)], 10.0, 0.0, 1000.0, ["gpu"])
    assert phases.method == "timeline"
    assert (phases.prefill_j, phases.decode_j) == pytest.approx((500.0, 500.0))


def test_to_dict_has_fields_and_closure_ok():
    d = Phases("timeline", 1.0, 2.0, 3.0, 4.0, 10.0, 0.0).to_dict()
    assert d == {
        "method": "timeline",
        "prefill_j": 1.0,
        "decode_j": 2.0,
        "other_j": 3.0,
        "idle_j": 4.0,
        "total_j": 10.0,
        "closure_rel_error": 0.0,
        "closure_ok": True,
        "attribution": "batch_spans",
    }
    assert not Phases("timeline", 0, 0, 0, 0, 1.0, 0.0101).closure_ok
