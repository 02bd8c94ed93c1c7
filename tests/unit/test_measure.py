"""Net energy and the phase breakdown of one window, against hand-computed values."""

from __future__ import annotations

import pytest

from harness.contract.results import validation_problem
from harness.meters.base import EnergyComponent
from harness.window.baseline import Baseline
from harness.window.measure import _energy_breakdown
from tests.unit.conftest import make_result


def _metrics(duration: float = 10.0) -> dict:
    return {"duration_s": duration, "tokens_in": 100, "tokens_out": 200}


def _baseline(watts: float) -> Baseline:
    return Baseline(
        power_w={"gpu": watts, "cpu": 99.0},
        devices=[],
        duration_s=10.0,
        measured_at="2026-11-21T00:00:00+00:00",
        cached=False,
        method="nvml_counter",
        is_estimate=False,
    )


def _gpu(energy_j: float) -> list[EnergyComponent]:
    return [EnergyComponent("nvml", "nvml_counter", "gpu", False, energy_j)]


def test_constant_power_window_closes_exactly() -> None:
    # 100 W for 10 s; one batch: prefill [1, 2], decode [2, 9]; idle 40 W (GPU domain only).
    samples = [{"t_s": t, "energy_j": {"gpu": 100.0 * t}} for t in (0.0, 2.5, 5.0, 7.5, 10.0)]
    requests = [
        {
            "batch": 0,
            "tokens_in": 10,
            "tokens_out": 20,
            "t_start_s": 1.0,
            "t_first_token_s": 2.0,
            "t_end_s": 9.0,
        }
    ]
    metrics = _metrics()
    phases = _energy_breakdown(
        metrics, {"energy_total_j": 1000.0}, _baseline(40.0), samples, requests, _gpu(1000.0)
    )
    assert metrics["idle_power_w"] == 40.0  # the CPU's idle power is not in a GPU-only window
    assert metrics["energy_idle_j"] == pytest.approx(400.0)
    assert metrics["energy_net_j"] == pytest.approx(600.0)
    assert metrics["j_per_output_token_net"] == pytest.approx(3.0)
    assert metrics["energy_prefill_j"] == pytest.approx(60.0)
    assert metrics["energy_decode_j"] == pytest.approx(420.0)
    assert metrics["j_per_input_token_prefill"] == pytest.approx(0.6)
    assert metrics["j_per_output_token_decode"] == pytest.approx(2.1)
    assert phases["other_j"] == pytest.approx(120.0)
    assert phases["closure_ok"] and phases["closure_rel_error"] == pytest.approx(0.0, abs=1e-12)


def test_baseline_above_window_power_gives_negative_net_that_still_validates() -> None:
    samples = [{"t_s": 0.0, "energy_j": {"gpu": 0.0}}, {"t_s": 4.0, "energy_j": {"gpu": 10.0}}]
    requests = [
        {
            "batch": 0,
            "tokens_in": 10,
            "tokens_out": 20,
            "t_start_s": 0.0,
            "t_first_token_s": 1.0,
            "t_end_s": 4.0,
        }
    ]
    metrics = _metrics(4.0)
    phases = _energy_breakdown(
        metrics, {"energy_total_j": 10.0}, _baseline(5.0), samples, requests, _gpu(10.0)
    )
    assert metrics["energy_net_j"] == pytest.approx(-10.0)
    assert metrics["energy_decode_j"] < 0 and metrics["j_per_output_token_decode"] < 0
    result = make_result()
    result["metrics"].update(metrics)
    result["energy"]["phases"] = phases
    assert validation_problem(result) is None


def test_no_baseline_no_net_energy() -> None:
    metrics = _metrics()
    phases = _energy_breakdown(
        metrics,
        {"energy_total_j": 50.0},
        None,
        [],
        [
            {
                "batch": 0,
                "tokens_in": 10,
                "tokens_out": 20,
                "t_start_s": 0.0,
                "t_first_token_s": 1.0,
                "t_end_s": 10.0,
            }
        ],
        _gpu(50.0),
    )
    assert metrics["energy_net_j"] is None and metrics["idle_power_w"] is None
    assert phases["idle_j"] == 0.0
    assert phases["prefill_j"] + phases["decode_j"] + phases["other_j"] == pytest.approx(50.0)


def test_serving_window_splits_by_share_of_work_and_validates() -> None:
    # tests/unit/test_workshare.py's hand case through the measurement path: 100 W for 10 s, no
    # idle; A runs alone [0,1] prefill then decodes to 10; B is queued [1,5] by the engine,
    # prefills [5,6] and decodes to 10. The static-batch rule gave 600 J of prefill.
    samples = [{"t_s": float(t), "energy_j": {"gpu": 100.0 * t}} for t in range(11)]
    requests = [
        {"index": 0, "batch": 0, "tokens_in": 100, "tokens_out": 91, "t_start_s": 0.0,
         "t_scheduled_s": 0.0, "t_first_token_s": 1.0, "t_end_s": 10.0},
        {"index": 1, "batch": 1, "tokens_in": 100, "tokens_out": 41, "t_start_s": 1.0,
         "t_scheduled_s": 5.0, "t_first_token_s": 6.0, "t_end_s": 10.0},
    ]  # fmt: skip
    metrics = {"duration_s": 10.0, "tokens_in": 200, "tokens_out": 132}
    phases = _energy_breakdown(
        metrics, {"energy_total_j": 1000.0}, None, samples, requests, _gpu(1000.0), traffic=True
    )
    assert phases["attribution"] == "work_share:engine_scheduled"
    assert metrics["energy_prefill_j"] == pytest.approx(100 + 10000 / 110)
    assert metrics["energy_decode_j"] == pytest.approx(800 + 1000 / 110)
    assert [r["energy_j"] for r in requests] == pytest.approx([700 + 1000 / 110, 200 + 10000 / 110])
    dist = metrics["j_per_request_attributed"]
    assert dist["n"] == 2 and dist["p50"] == pytest.approx(500.0)
    result = make_result()
    result["metrics"].update(metrics)
    result["energy"]["phases"] = phases
    result["requests"] = requests
    assert validation_problem(result) is None


def test_static_batches_keep_the_batch_span_rule() -> None:
    samples = [{"t_s": float(t), "energy_j": {"gpu": 100.0 * t}} for t in range(11)]
    requests = [
        {"batch": 0, "tokens_in": 1, "tokens_out": 2, "t_start_s": 0.0, "t_first_token_s": 1.0,
         "t_end_s": 10.0},
        {"batch": 1, "tokens_in": 1, "tokens_out": 2, "t_start_s": 1.0, "t_first_token_s": 6.0,
         "t_end_s": 10.0},
    ]  # fmt: skip
    metrics = {"duration_s": 10.0, "tokens_in": 2, "tokens_out": 4}
    phases = _energy_breakdown(
        metrics, {"energy_total_j": 1000.0}, None, samples, requests, _gpu(1000.0)
    )
    assert phases["attribution"] == "batch_spans"
    assert metrics["energy_prefill_j"] == pytest.approx(600.0)
