"""The GPU validation script's pure parts, on hand-made data: what it reads from stored results
(counter vs integrated power, baseline repeatability, closure), the overhead line it parses, and the
CPU-sized twin of each reference suite (a valid suite)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_validation as gv  # noqa: E402

from lembench.suite.loader import load_suite  # noqa: E402


def _run(
    tmp_path: Path, name: str, counter_j: float, power_w: list[float], idle_w: float, closure: float
) -> dict:
    folder = tmp_path / name
    folder.mkdir()
    samples = [{"t_s": i * 0.1, "gpus": [{"power_w": p}]} for i, p in enumerate(power_w)]
    (folder / "timeline.jsonl").write_text("\n".join(json.dumps(s) for s in samples) + "\n")
    return {
        "_dir": str(folder),
        "status": "ok",
        "run_id": name,
        "metrics": {"duration_s": 0.1 * (len(power_w) - 1)},
        "timeline": {"file": "timeline.jsonl"},
        "energy": {
            "components": [{"domain": "gpu", "method": "nvml_counter", "energy_j": counter_j}],
            "phases": {"closure_rel_error": closure},
            "baseline": {"power_w": {"gpu": idle_w}, "cached": False},
        },
    }


def test_meter_figures_against_hand_computed_values(tmp_path: Path) -> None:
    # 11 samples of 200 W over 1 s: the trapezoid integral is 200 J.
    a = _run(tmp_path, "a", 204.0, [200.0] * 11, 70.0, 0.004)
    b = _run(tmp_path, "b", 200.0, [200.0] * 11, 73.0, 0.02)
    fig = gv.meter_figures([a, b])
    first, second = fig["runs"]
    assert first["integrated_power_j"] == pytest.approx(200.0)
    assert first["counter_vs_power_rel"] == pytest.approx(4 / 204)
    assert second["counter_vs_power_rel"] == pytest.approx(0.0)
    assert fig["baseline_repeat_rel"] == pytest.approx(3 / 70)
    assert fig["checks"]["counter_vs_power"].startswith("met")
    assert fig["checks"]["baseline_repeat"].startswith("met")
    assert fig["checks"]["closure"].startswith("missed (worst 2.00%")


def test_cached_baselines_do_not_count_as_repeats(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", 200.0, [200.0] * 11, 70.0, 0.0)
    b = _run(tmp_path, "b", 200.0, [200.0] * 11, 70.0, 0.0)
    b["energy"]["baseline"]["cached"] = True
    assert gv.meter_figures([a, b])["baseline_repeat_rel"] is None


def test_integrated_power_sums_gpus_and_needs_two_points() -> None:
    two_gpus = [
        {"t_s": 0.0, "gpus": [{"power_w": 100}, {"power_w": 50}]},
        {"t_s": 2.0, "gpus": [{"power_w": 100}, {"power_w": 50}]},
    ]
    assert gv.integrated_power_j(two_gpus) == pytest.approx(300.0)
    assert gv.integrated_power_j(two_gpus[:1]) is None


def test_overhead_line_is_parsed() -> None:
    log = "round 1: ...\nharness/bare throughput ratio: median 0.9934 (95% CI 0.99-1.00)\n"
    assert gv.overhead_ratio(log) == pytest.approx(0.9934)
    assert gv.overhead_ratio("no such line") is None


@pytest.mark.parametrize("name", ["meter-validation", "pytorch-dummy-sweep"])
def test_reference_suites_and_their_cpu_twins_are_valid(name: str, tmp_path: Path) -> None:
    src = gv.SUITES / f"{name}.yaml"
    load_suite(src)
    dry = gv.shrink_for_cpu(yaml.safe_load(src.read_text()))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dry))
    suite = load_suite(path)
    for exp in suite.experiments:
        assert exp.config["device"] == "cpu" and exp.config["model"] == "smollm2-135m"
        assert "quantization" not in (exp.config.get("pytorch") or {})
