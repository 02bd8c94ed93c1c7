"""Real NVML on a real GPU: the energy counter against integrated 10 Hz power, and the idle
baseline's repeatability. Goals from the measurement issue: within 3% and within 5%."""

from __future__ import annotations

import itertools
import time

import pytest

from harness.hardware.telemetry import Telemetry
from harness.meters.nvml import NvmlMeter
from harness.window.baseline import measure_baseline
from harness.window.timeline import Timeline

MEASUREMENT = {"meters": ["nvml"], "country_iso_code": "USA", "region": None}


def _load_gpu(seconds: float) -> None:
    """Keep the GPU busy with bf16 matmuls for ``seconds``."""
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(20):
            a = (a @ b).clamp_(-1, 1)
        torch.cuda.synchronize()


def _integrated_power_j(samples: list[dict]) -> float:
    """Trapezoid integral of GPU 0's instantaneous power over the timeline."""
    points = [(s["t_s"], s["gpus"][0]["power_w"]) for s in samples if s["gpus"]]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(points))


def test_counter_agrees_with_integrated_power_under_load() -> None:
    meter = NvmlMeter(MEASUREMENT)
    telemetry = Telemetry.open()
    assert telemetry is not None
    try:
        timeline = Timeline([meter], 0.1, telemetry)
        _load_gpu(3)  # reach a steady state before the window
        with meter:
            timeline.start(time.perf_counter())
            _load_gpu(30)
            samples = timeline.stop()
        (component,) = meter.components
        counter_j = component.energy_j
        integrated_j = _integrated_power_j(samples)
        print(
            f"counter {counter_j:.1f} J, integrated 10 Hz power {integrated_j:.1f} J, "
            f"method {component.method}, {len(samples)} samples"
        )
        assert component.method == "nvml_counter"
        assert counter_j == pytest.approx(integrated_j, rel=0.03)
    finally:
        meter.close()
        telemetry.close()


def test_idle_baseline_is_repeatable() -> None:
    meter = NvmlMeter(MEASUREMENT)
    try:
        time.sleep(5)  # let the GPU settle after earlier load
        first = measure_baseline([meter], 10, 0)
        second = measure_baseline([meter], 10, 0)
        print(f"idle baselines {first.power_w} and {second.power_w}")
        assert not first.cached and not second.cached
        assert second.power_w["gpu"] == pytest.approx(first.power_w["gpu"], rel=0.05)
    finally:
        meter.close()
