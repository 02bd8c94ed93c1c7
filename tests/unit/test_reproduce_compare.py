"""The fair comparisons of ``lembench reproduce`` and their verdicts, on hand-made measurements."""

from __future__ import annotations

import copy

import pytest

from lembench.reproduce.compare import (
    DUMMY_NOTE,
    NOT_COMPARABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    PointValue,
    judge,
)
from lembench.reproduce.measured import Measured
from tests.helpers.repro_runs import REFERENCE, claim

H100 = "NVIDIA H100 80GB HBM3"


def m(mean: float, half: float | None = 0.01, **kw) -> Measured:
    """A measurement with a 95% CI of +-half x mean (None: no CI)."""
    low = None if half is None else mean * (1 - half)
    high = None if half is None else mean * (1 + half)
    kw.setdefault("hardware", H100)
    kw.setdefault("energy_method", "nvml_counter")
    return Measured("e" + str(mean), mean=mean, low=low, high=high, n=3, **kw)


def points(*measured: Measured, published=(4.0, 2.0, 1.0)) -> list[PointValue]:
    labels = ("b1", "b2", "b4")
    return [
        PointValue(lab, pub, mm) for lab, pub, mm in zip(labels, published, measured, strict=False)
    ]


def the(cid: str) -> dict:
    return copy.deepcopy(next(c for c in REFERENCE["claims"] if c["id"] == cid))


def run(c: dict, pts: list[PointValue], **kw):
    kw.setdefault("hardware_match", ["H100"])
    kw.setdefault("hardware_description", "1x NVIDIA H100")
    return judge(c, pts, **kw)


# -- curve ---------------------------------------------------------------------------------------


def test_curve_reproduced_when_every_ratio_is_within_tolerance_on_other_hardware_scale():
    # Absolute values three times the published ones: the shape is what counts.
    j = run(the("energy-curve"), points(m(12.0), m(6.6), m(3.3)))
    assert j.verdict == REPRODUCED
    assert "same direction" in j.why and "b2 / b1" in j.why
    assert [round(q.measured, 3) for q in j.quantities] == [0.55, 0.275]
    assert not j.uncertain


def test_curve_not_reproduced_names_the_worst_point():
    j = run(the("energy-curve"), points(m(4.0), m(3.0), m(2.0)))
    assert j.verdict == NOT_REPRODUCED
    assert j.why.startswith("b4 / b1: 0.5 vs published 0.25 (+100%; tolerance ±20%)")
    assert "and 1 more outside it" in j.why


def test_curve_direction_must_match_where_the_published_curve_moves():
    j = run(the("energy-curve"), points(m(4.0), m(4.4), m(1.0)))
    assert j.verdict == NOT_REPRODUCED
    assert j.why.startswith(
        "from b1 to b2 the measured value moves +10% where the published one moves -50%; "
        "b2 / b1: 1.1 vs published 0.5"
    )


def test_curve_small_published_steps_do_not_fix_the_direction():
    c = the("energy-curve")
    pts = points(
        m(4.0), m(2.0), m(2.05), published=(4.0, 2.0, 1.9)
    )  # -5% published, +2.5% measured
    assert run(c, pts).verdict == REPRODUCED


# -- ratio and ratio_range ----------------------------------------------------------------------


def test_ratio_reproduced_and_not():
    c = the("halving")
    assert run(c, points(m(10.0), m(5.5), m(1.0))).verdict == REPRODUCED
    j = run(c, points(m(10.0), m(8.0), m(1.0)))
    assert j.verdict == NOT_REPRODUCED
    assert "b2 / b1: 0.8 vs published 0.5 (+60%" in j.why


def test_ratio_range_is_widened_by_the_tolerance():
    c = the("quarter-range")  # [0.2, 0.3] widened by 20%: [0.16, 0.36]
    assert run(c, points(m(10.0), m(5.0), m(3.5))).verdict == REPRODUCED
    j = run(c, points(m(10.0), m(5.0), m(3.7)))
    assert j.verdict == NOT_REPRODUCED
    assert "outside the published range [0.2, 0.3] widened by ±20% to [0.16, 0.36]" in j.why


# -- ranking ------------------------------------------------------------------------------------


def test_ranking_same_order_and_spread():
    j = run(the("order"), points(m(0.9), m(0.5), m(0.25)))
    assert j.verdict == REPRODUCED
    assert j.measured_order == ["b4", "b2", "b1"] == j.published_order


def test_ranking_order_differs():
    j = run(the("order"), points(m(0.5), m(0.9), m(0.25)))
    assert j.verdict == NOT_REPRODUCED
    assert "order differs from position 2" in j.why


def test_ranking_spread_outside_tolerance():
    j = run(the("order"), points(m(2.0), m(1.5), m(1.0)))  # spread 2 vs 4
    assert j.verdict == NOT_REPRODUCED
    assert j.why.startswith("same order, but spread (max / min): 2 vs published 4 (-50%")


def test_ranking_with_overlapping_cis_is_uncertain():
    j = run(the("order"), points(m(1.0, 0.2), m(0.9, 0.2), m(0.25)))
    assert j.uncertain
    assert "the 95% CIs of b2 and b1 overlap" in j.why


# -- absolute -----------------------------------------------------------------------------------


def test_absolute_on_the_same_hardware():
    assert run(the("absolute-h100"), points(m(4.2), m(1.9), m(1.0))).verdict == REPRODUCED
    j = run(the("absolute-h100"), points(m(6.0), m(2.0), m(1.0)))
    assert j.verdict == NOT_REPRODUCED
    assert (
        j.why == "same hardware, but b1: 6 vs published 4 J per output token (+50%; tolerance ±20%)"
    )


def test_absolute_on_other_hardware_is_not_comparable():
    pts = points(*(m(v, hardware="NVIDIA L4") for v in (4.0, 2.0, 1.0)))
    j = run(the("absolute-h100"), pts)
    assert j.verdict == NOT_COMPARABLE
    assert j.why == "hardware differs: 1x NVIDIA H100 vs NVIDIA L4"
    # The other kinds judge the same measurements: they do not depend on the hardware.
    assert run(the("energy-curve"), pts).verdict == REPRODUCED


def test_absolute_without_known_hardware_never_compares():
    j = run(the("absolute-h100"), points(m(4.0), m(2.0), m(1.0)), hardware_match=[])
    assert j.verdict == NOT_COMPARABLE and "hardware differs" in j.why


# -- not comparable -----------------------------------------------------------------------------


def test_failed_experiment_gives_its_stored_reason():
    failed = Measured("abc123", n_failed=3, failure="failed (3 runs): backend_unavailable: no CUDA")
    j = run(the("energy-curve"), points(m(4.0), failed, m(1.0)))
    assert j.verdict == NOT_COMPARABLE
    assert j.why == "experiment abc123 (b2) failed (3 runs): backend_unavailable: no CUDA"
    assert [q.published for q in j.quantities] == [0.5, 0.25]  # the published side is still shown


def test_estimated_energy_is_not_compared_but_throughput_is():
    est = dict(is_estimate=True, energy_method="estimate_codecarbon")
    pts = points(m(4.0, **est), m(2.0, **est), m(1.0, **est))
    j = run(the("energy-curve"), pts)
    assert j.verdict == NOT_COMPARABLE
    assert "estimate (estimate_codecarbon; codecarbon's TDP model tracks time, not power)" in j.why
    c = the("energy-curve")
    c["metric"] = "throughput_out_tok_s"
    assert run(c, pts).verdict == REPRODUCED


def test_dummy_weights_exclusion_and_note():
    c = the("halving")
    c["dummy_weights"], c["dummy_weights_reason"] = "not_comparable", "outliers need real weights"
    pts = points(m(4.0), m(2.0), m(1.0))
    j = run(c, pts, dummy=True)
    assert j.verdict == NOT_COMPARABLE
    assert j.why == f"{DUMMY_NOTE}; this claim is not: outliers need real weights"
    assert run(c, pts).verdict == REPRODUCED  # real weights: judged
    j = run(the("halving"), pts, dummy=True)
    assert j.verdict == REPRODUCED and j.why.startswith(DUMMY_NOTE + "; the ratio")


# -- uncertainty --------------------------------------------------------------------------------


def test_ci_straddling_the_tolerance_makes_the_verdict_uncertain():
    # b2/b1 = 0.59, band [0.4, 0.6]; 10% CIs put the ratio's interval across 0.6.
    j = run(the("halving"), points(m(10.0, 0.1), m(5.9, 0.1), m(1.0)))
    assert j.verdict == REPRODUCED and j.uncertain
    assert "straddles the tolerance: verdict uncertain" in j.why


def test_fewer_than_two_runs_means_no_ci():
    j = run(the("halving"), points(m(10.0, None), m(5.0), m(1.0)))
    assert j.uncertain and "no 95% CI for b1" in j.why


@pytest.mark.parametrize("kind", ["curve", "ratio", "ratio_range", "ranking", "absolute"])
def test_every_kind_judges_a_zero_measurement_without_crashing(kind):
    c = claim("z", kind)
    if kind in ("ratio", "ratio_range"):
        c["comparison"]["pairs"] = [{"numerator": "b2", "denominator": "b1"}]
    if kind == "ratio_range":
        c["comparison"]["range"] = [0.4, 0.6]
    j = run(c, points(m(0.0, None), m(2.0), m(1.0)))
    assert j.verdict in (NOT_COMPARABLE, NOT_REPRODUCED)
