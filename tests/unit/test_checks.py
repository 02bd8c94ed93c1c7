"""Measurement warnings (harness.window.checks) from hand-built samples, processes and reports."""

from __future__ import annotations

import importlib.machinery
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.meters.base import EnergyComponent
from harness.window import checks
from harness.window.phases import Phases
from harness.window.warmup import WarmupReport


def gpu(id_="0", **fields):
    entry = {
        "id": id_,
        "power_w": 300.0,
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": 2619,
        "throttle_reasons": 0,
        "power_limit_w": 700.0,
    }
    entry.update(fields)
    return entry


def sample(t, *gpus):
    return {"t_s": t, "energy_j": {"gpu": 300.0 * t}, "gpus": list(gpus)}


def one_line(w):
    assert w is not None
    assert "\n" not in w["message"] and w["message"] == w["message"].strip()
    assert set(w) == {"code", "message"}
    return w


# -- window_too_short ----------------------------------------------------------------------------
def test_window_too_short_under_one_second():
    w = one_line(checks.window_too_short(0.45, {"nvml": 0.1}))
    assert w["code"] == "window_too_short"
    assert "0.450 s" in w["message"] and "1 s" in w["message"]


def test_window_too_short_by_the_slowest_meter():
    # codecarbon updates every 1 s: a 5 s window is under 10 periods.
    w = one_line(checks.window_too_short(5.0, {"rapl": 0.001, "codecarbon": 1.0, "x": None}))
    assert "10 s" in w["message"] and "codecarbon" in w["message"]
    assert checks.window_too_short(10.0, {"codecarbon": 1.0}) is None


def test_window_long_enough():
    assert checks.window_too_short(1.0, {"nvml": 0.1}) is None
    assert checks.window_too_short(2.0, None) is None
    assert checks.window_too_short(0.9, None) is not None


# -- throttling ------------------------------------------------------------------------------------
def _installed_throttle_constants() -> dict[str, int]:
    """``nvmlClocks{Event,Throttle}Reason*`` hex constants of the installed nvidia-ml-py, read from
    its source (sys.modules may hold the fake pynvml; importing the real one has side effects)."""
    spec = importlib.machinery.PathFinder.find_spec("pynvml")
    if spec is None or spec.origin is None:
        pytest.skip("nvidia-ml-py is not installed")
    text = Path(spec.origin).read_text(encoding="utf-8")
    pattern = r"^(nvmlClocks(?:Event|Throttle)Reason\w+)\s*=\s*(0x[0-9A-Fa-f]+)"
    return {name: int(value, 16) for name, value in re.findall(pattern, text, re.MULTILINE)}


def test_throttle_bits_match_installed_pynvml():
    constants = _installed_throttle_constants()
    expected = {
        "GpuIdle": "GPU idle",
        "ApplicationsClocksSetting": "applications clocks setting",
        "SwPowerCap": "SW power cap",
        "HwSlowdown": "HW slowdown",
        "SyncBoost": "sync boost",
        "SwThermalSlowdown": "SW thermal slowdown",
        "HwThermalSlowdown": "HW thermal slowdown",
        "HwPowerBrakeSlowdown": "HW power brake slowdown",
        "DisplayClockSetting": "display clock setting",
        "BoardLimit": "board limit",
        "Reliability": "reliability",
    }
    checked = 0
    for suffix, name in expected.items():
        for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
            if prefix + suffix in constants:
                assert checks.THROTTLE_REASONS[constants[prefix + suffix]] == name
                checked += 1
    assert checked >= 9
    benign = constants["nvmlClocksThrottleReasonGpuIdle"]
    benign |= constants["nvmlClocksThrottleReasonApplicationsClocksSetting"]
    assert benign == checks.BENIGN_THROTTLE


def test_idle_and_application_clocks_are_not_throttling():
    samples = [sample(0.0, gpu(throttle_reasons=0x1)), sample(0.1, gpu(throttle_reasons=0x3))]
    assert checks.throttling(samples) is None
    assert checks.throttling([sample(0.0, gpu(throttle_reasons=None))]) is None
    assert checks.throttling([{"t_s": 0.0, "energy_j": {}, "gpus": []}]) is None
    assert checks.throttling([]) is None


def test_throttling_names_the_reasons_and_counts_samples():
    samples = [
        sample(0.0, gpu(throttle_reasons=0x0), gpu("1", throttle_reasons=0x0)),
        sample(0.1, gpu(throttle_reasons=0x4 | 0x1), gpu("1", throttle_reasons=0x0)),
        sample(0.2, gpu(throttle_reasons=0x4 | 0x40), gpu("1", throttle_reasons=0x20)),
        sample(0.3, gpu(throttle_reasons=0x0), gpu("1", throttle_reasons=0x0)),
    ]
    w = one_line(checks.throttling(samples))
    assert w["code"] == "throttling"
    msg = w["message"]
    assert "GPU 0: SW power cap in 2/4 samples, HW thermal slowdown in 1/4 samples" in msg
    assert "GPU 1: SW thermal slowdown in 1/4 samples" in msg
    assert "GPU idle" not in msg


@pytest.mark.parametrize(
    ("mask", "name"),
    [
        (0x8, "HW slowdown"),
        (0x10, "sync boost"),
        (0x80, "HW power brake slowdown"),
        (0x100, "display clock setting"),
        (0x200, "board limit"),
        (0x1000, "0x1000"),  # a bit newer than this table
    ],
)
def test_each_reason_is_named(mask, name):
    w = checks.throttling([sample(0.0, gpu(throttle_reasons=mask))])
    assert f"{name} in 1/1 samples" in w["message"]


# -- power limit and clocks ------------------------------------------------------------------------
def test_power_limit_changed_between_first_and_last_sample():
    samples = [
        sample(0.0, gpu(power_limit_w=700.0), gpu("1", power_limit_w=700.0)),
        sample(0.1, gpu(power_limit_w=650.0), gpu("1", power_limit_w=700.0)),  # middle: ignored
        sample(0.2, gpu(power_limit_w=400.0), gpu("1", power_limit_w=700.0)),
    ]
    w = one_line(checks.power_limit_changed(samples))
    assert w["code"] == "power_limit_changed"
    assert "GPU 0: 700 W -> 400 W" in w["message"] and "GPU 1" not in w["message"]


def test_power_limit_unchanged_or_unknown():
    same = [sample(0.0, gpu(power_limit_w=700.0)), sample(1.0, gpu(power_limit_w=700.2))]
    assert checks.power_limit_changed(same) is None
    unknown = [sample(0.0, gpu(power_limit_w=None)), sample(1.0, gpu(power_limit_w=300.0))]
    assert checks.power_limit_changed(unknown) is None
    assert checks.power_limit_changed([]) is None
    # The edges are the first and last samples that have GPU entries.
    edges = [
        {"t_s": 0.0, "gpus": []},
        sample(0.1, gpu(power_limit_w=700.0)),
        sample(0.2, gpu(power_limit_w=600.0)),
        {"t_s": 0.3, "gpus": []},
    ]
    assert checks.power_limit_changed(edges) is not None


def test_clocks_changed_compares_clock_settings_not_current_clocks():
    # Current SM clocks vary with load: never a change of settings.
    moving = [sample(0.0, gpu(sm_clock_mhz=1980)), sample(1.0, gpu(sm_clock_mhz=1410))]
    assert checks.clocks_changed(moving) is None
    changed = [
        sample(0.0, gpu(app_sm_clock_mhz=1980, max_mem_clock_mhz=2619)),
        sample(1.0, gpu(app_sm_clock_mhz=1755, max_mem_clock_mhz=2619)),
    ]
    w = one_line(checks.clocks_changed(changed))
    assert w["code"] == "clocks_changed"
    assert "GPU 0 app_sm_clock_mhz 1980 -> 1755" in w["message"]
    assert "max_mem" not in w["message"]
    one_sided = [sample(0.0, gpu(app_sm_clock_mhz=1980)), sample(1.0, gpu())]
    assert checks.clocks_changed(one_sided) is None


# -- other processes -------------------------------------------------------------------------------
def test_other_gpu_processes_named_with_their_gpu_and_memory():
    procs = [
        {"id": "0", "pid": 100, "used_memory_bytes": 2 * 2**30},
        {"id": "0", "pid": 555, "used_memory_bytes": 512 * 2**20},
        {"id": "1", "pid": 777, "used_memory_bytes": None},
    ]
    w = one_line(checks.other_gpu_processes(procs, own_pid=100))
    assert w["code"] == "other_gpu_processes"
    assert "GPU 0: pid 555 (512 MiB)" in w["message"]
    assert "GPU 1: pid 777" in w["message"] and "pid 100" not in w["message"]


def test_only_our_processes():
    procs = [{"id": "0", "pid": 100}, {"id": "1", "pid": 101}]
    assert checks.other_gpu_processes(procs, own_pid=[100, 101]) is None
    assert checks.other_gpu_processes([], own_pid=100) is None
    # Telemetry marks our processes (incl. worker children) with "ours".
    marked = [{"id": "0", "pid": 5, "ours": True}, {"id": "0", "pid": 6, "ours": False}]
    assert "pid 6" in checks.other_gpu_processes(marked, own_pid=1)["message"]


def test_pids_not_comparable_in_a_container():
    # NVML shows host pids; none matches ours although the model runs on the GPU.
    procs = [{"id": "0", "pid": 48213, "used_memory_bytes": 10 * 2**30}]
    assert checks.other_gpu_processes(procs, own_pid=1) is None
    assert checks.other_gpu_processes(procs, own_pid=1, model_on_gpu=True) is None
    # A CPU run: nothing on the GPU can be ours.
    w = checks.other_gpu_processes(procs, own_pid=1, model_on_gpu=False)
    assert w is not None and "pid 48213" in w["message"]


# -- phases, net energy, baseline, warmup ----------------------------------------------------------
def test_closure_failed_from_phases_and_dict():
    bad = Phases("timeline", 60.0, 420.0, 120.0, 400.0, 1100.0, 100 / 1100)
    w = one_line(checks.closure_failed(bad))
    assert w["code"] == "closure_failed"
    assert "1000 J" in w["message"] and "1100 J" in w["message"] and "9.1%" in w["message"]
    assert checks.closure_failed(bad.to_dict()) == w
    good = Phases("timeline", 60.0, 420.0, 120.0, 400.0, 1000.0, 0.0)
    assert checks.closure_failed(good) is None
    assert checks.closure_failed(good.to_dict()) is None
    assert checks.closure_failed(None) is None


def test_negative_net_energy_from_phases_and_metrics():
    phases = Phases("timeline", -20.0, -140.0, -40.0, 1200.0, 1000.0, 0.0)
    metrics = {"energy_net_j": -200.0, "idle_power_w": 120.0, "avg_power_w": 100.0}
    w = one_line(checks.negative_net_energy(phases, metrics))
    assert w["code"] == "negative_net_energy"
    msg = w["message"]
    assert "window -200 J" in msg and "prefill -20 J" in msg and "decode -140 J" in msg
    assert "other -40 J" in msg and "idle 120 W vs window mean 100 W" in msg
    assert checks.negative_net_energy(None, metrics) is not None
    assert checks.negative_net_energy(phases.to_dict()) is not None


def test_slightly_negative_gaps_are_noise():
    # Gaps between batches sit near idle: -5 J of a 1000 J window is not worth a warning...
    phases = Phases("timeline", 60.0, 420.0, -5.0, 525.0, 1000.0, 0.0)
    assert checks.negative_net_energy(phases, {"energy_net_j": 475.0}) is None
    # ... -50 J is.
    phases = Phases("timeline", 60.0, 420.0, -50.0, 570.0, 1000.0, 0.0)
    assert "other -50 J" in checks.negative_net_energy(phases)["message"]


def test_positive_net_energy():
    phases = Phases("timeline", 60.0, 420.0, 120.0, 400.0, 1000.0, 0.0)
    assert checks.negative_net_energy(phases, {"energy_net_j": 600.0}) is None
    assert checks.negative_net_energy(None, {"energy_net_j": None}) is None
    assert checks.negative_net_energy() is None


def test_no_baseline():
    w = one_line(checks.no_baseline(None, idle_baseline_s=0))
    assert w["code"] == "no_baseline" and "idle_baseline_s: 0" in w["message"]
    w = one_line(checks.no_baseline(None, idle_baseline_s=10))
    assert "no idle baseline was measured" in w["message"] and "harness log" in w["message"]
    assert checks.no_baseline({"power_w": {"gpu": 60.0}}) is None


def test_warmup_not_converged():
    report = WarmupReport(
        runs=20, latencies_s=[1.0] * 20, final_cv=0.183, converged=False, cv_threshold=0.1
    )
    w = one_line(checks.warmup_not_converged(report))
    assert w["code"] == "warmup_not_converged"
    assert "0.183" in w["message"] and "threshold 0.1" in w["message"] and "20" in w["message"]
    assert checks.warmup_not_converged(report.to_dict()) == w
    for converged in (True, None):
        ok = WarmupReport(runs=3, converged=converged, cv_threshold=0.1, final_cv=0.01)
        assert checks.warmup_not_converged(ok) is None
    assert checks.warmup_not_converged(None) is None


# -- energy labels, exact output, timeline errors --------------------------------------------------
def component(method, domain, is_estimate):
    return EnergyComponent("m", method, domain, is_estimate, 1.0)


def test_estimate_used_and_no_energy():
    comps = [component("estimate_codecarbon", "cpu", True), component("nvml_counter", "gpu", False)]
    w = one_line(checks.estimate_used({"is_estimate": True}, comps))
    assert "estimate_codecarbon" in w["message"] and "nvml_counter" not in w["message"]
    assert checks.estimate_used({"is_estimate": False}, comps) is None
    assert one_line(checks.no_energy({"energy_total_j": None}))["code"] == "no_energy"
    assert checks.no_energy({"energy_total_j": 0.0}) is None


def test_exact_output_violated():
    w = one_line(checks.exact_output_violated([8, 5, 8, 7], 8, True))
    assert w["message"].startswith("2 request(s) did not produce exactly 8 tokens (got 5..7)")
    assert checks.exact_output_violated([8, 5], 8, False) is None
    assert checks.exact_output_violated([8, 8], 8, True) is None
    assert "(got 5)" in checks.exact_output_violated([5, 5], 8, True)["message"]


def test_timeline_read_errors():
    assert checks.timeline_read_errors(0) is None
    assert "3 timeline read(s)" in one_line(checks.timeline_read_errors(3))["message"]


# -- everything together ---------------------------------------------------------------------------
@dataclass
class FakeMeter:
    name: str
    update_period_s: float | None


def test_window_warnings_in_code_order():
    samples = [
        sample(0.0, gpu(throttle_reasons=0x4, power_limit_w=700.0)),
        sample(0.5, gpu(throttle_reasons=0x0, power_limit_w=600.0)),
    ]
    phases = Phases("timeline", -1.0, 5.0, 0.0, 10.0, 20.0, 0.3)
    warnings = checks.window_warnings(
        checks.WindowFacts(
            metrics={"duration_s": 0.5, "energy_net_j": 10.0},
            energy={"energy_total_j": 20.0, "is_estimate": True},
            components=[component("estimate_codecarbon", "cpu", True)],
            phases=phases.to_dict(),
            baseline=None,
            samples=samples,
            meters=[FakeMeter("codecarbon", 1.0)],
            processes=[{"id": "0", "pid": 1}, {"id": "0", "pid": 2}],
            outside_load=[{"id": "1", "util_gpu_pct": 80.0, "power_w": 250.0, "processes": 1}],
            own_pid=1,
            warmup=WarmupReport(runs=20, final_cv=0.5, converged=False, cv_threshold=0.1),
            tokens_out=[3, 2],
            max_new_tokens=3,
            exact=True,
            timeline_errors=1,
            idle_baseline_s=0,
        )
    )
    codes = [w["code"] for w in warnings]
    assert codes == [c for c in checks.CODES if c not in ("no_energy", "clocks_changed")]
    assert all("\n" not in w["message"] for w in warnings)


def test_window_warnings_clean_window():
    samples = [sample(0.0, gpu()), sample(30.0, gpu())]
    warnings = checks.window_warnings(
        checks.WindowFacts(
            metrics={"duration_s": 30.0, "energy_net_j": 100.0},
            energy={"energy_total_j": 9000.0, "is_estimate": False},
            components=[component("nvml_counter", "gpu", False)],
            phases=Phases("timeline", 10.0, 80.0, 10.0, 8900.0, 9000.0, 0.0).to_dict(),
            baseline={"power_w": {"gpu": 296.7}},
            samples=samples,
            meters=[FakeMeter("nvml", 0.1)],
            processes=[{"id": "0", "pid": 1, "ours": True}],
            own_pid=1,
            warmup=WarmupReport(runs=3, final_cv=0.01, converged=True, cv_threshold=0.1),
            tokens_out=[3, 3],
            max_new_tokens=3,
            exact=True,
        )
    )
    assert warnings == []


def test_window_warnings_without_energy_skips_no_baseline():
    warnings = checks.window_warnings(
        checks.WindowFacts(
            metrics={"duration_s": 5.0}, energy={"energy_total_j": None, "is_estimate": False}
        )
    )
    assert [w["code"] for w in warnings] == ["no_energy"]


def test_other_gpu_load_names_each_busy_gpu_outside_the_set():
    assert checks.other_gpu_load([]) is None
    w = checks.other_gpu_load(
        [
            {"id": "0", "util_gpu_pct": 93.0, "power_w": 412.4, "processes": 2},
            {"id": "3", "util_gpu_pct": None, "power_w": None, "processes": 1},
        ]
    )
    assert w is not None and w["code"] == "other_gpu_load"
    assert "GPU 0 (93% busy, 412 W, 2 process(es))" in w["message"]
    assert "GPU 3 (1 process(es))" in w["message"]


def test_negative_measured_part_is_warned_even_when_the_whole_is_positive():
    # Mixed run: the estimated CPU keeps the whole-system net positive, the ranked GPU part is not.
    metrics = {"energy_net_j": 12.0, "energy_measured_net_j": -3.0}
    w = checks.negative_net_energy(None, metrics)
    assert w is not None and "measured part -3 J" in w["message"]
    assert (
        checks.negative_net_energy(None, {"energy_net_j": 5.0, "energy_measured_net_j": 5.0})
        is None
    )
