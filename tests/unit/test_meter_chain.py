"""Meter selection (auto and explicit lists) and combining components into the result's energy."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from harness.contract.registry import UnknownNameError
from harness.contract.schemas import iter_errors
from harness.meters.base import EnergyComponent, MeterUnavailable
from harness.meters.chain import auto_order, combine, select_meters
from harness.meters.nvml import NvmlMeter
from harness.meters.rapl import RaplMeter
from tests.fakes import fake_pynvml
from tests.fakes.fake_amdsmi import FakeAmdGpu, FakeAmdsmi
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No GPU (NVML library missing, amdsmi not installed) and no powercap: what this development
    machine looks like."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakePynvml(init_error=fake_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # import amdsmi -> ImportError
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    return monkeypatch


def with_gpu(monkeypatch: pytest.MonkeyPatch) -> FakePynvml:
    fake = FakePynvml([FakeGpu(energy_mj=0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def with_rapl(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    pkg = root / "intel-rapl:0"
    for zone, name in ((pkg, "package-0"), (pkg / "intel-rapl:0:0", "dram")):
        zone.mkdir(parents=True)
        (zone / "name").write_text(name)
        (zone / "energy_uj").write_text("0")
        (zone / "max_energy_range_uj").write_text("262143328850")
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(root))
    return root


def close(meters) -> None:
    for m in meters:
        m.close()


def comp(meter: str, method: str, domain: str, energy: float, est: bool = False):
    return EnergyComponent(
        meter=meter, method=method, domain=domain, is_estimate=est, energy_j=energy
    )


# -- select_meters --------------------------------------------------------------------------------
def test_auto_order_comes_from_the_descriptions() -> None:
    # Measuring meters first, estimates last; each only where its description says it runs.
    assert auto_order("linux") == ["amdsmi", "nvml", "rapl", "codecarbon"]
    assert auto_order("darwin") == ["apple", "codecarbon"]
    assert auto_order("win32") == ["nvml", "codecarbon"]


def test_auto_on_an_amd_machine_uses_amdsmi_for_the_experiments_gpu(env) -> None:
    pytest.importorskip("codecarbon")
    fake = FakeAmdsmi([FakeAmdGpu(energy_count=0), FakeAmdGpu(energy_count=0)])
    env.setitem(sys.modules, "amdsmi", fake)
    env.setenv("HIP_VISIBLE_DEVICES", "1")
    meters, skipped = select_meters({"meters": ["auto"]}, {"device": "cuda:0"})
    assert [m.name for m in meters] == ["amdsmi", "codecarbon"]
    amd = meters[0]
    assert [d["uuid"] for d in amd.describe()["devices"]] == [fake.gpus[1].uuid]
    assert skipped["nvml"] == "not needed: amdsmi measures gpu"
    close(meters)
    assert fake.initialised == 0


def test_auto_without_gpu_or_rapl_uses_the_codecarbon_estimate(env) -> None:
    pytest.importorskip("codecarbon")
    meters, skipped = select_meters({"meters": ["auto"]})
    assert [m.name for m in meters] == ["codecarbon"]
    assert set(skipped) == {"amdsmi", "nvml", "rapl"}
    assert skipped["amdsmi"] == "amdsmi is not installed (pip install amdsmi)"
    assert skipped["nvml"] == "NVML init failed: NVML Shared Library Not Found"
    assert "absent" in skipped["rapl"]
    close(meters)


@pytest.mark.skipif(
    Path("/sys/class/powercap").exists() or shutil.which("nvidia-smi") is not None,
    reason="only on a machine without RAPL and GPU, like the development machine",
)
def test_auto_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("codecarbon")
    monkeypatch.delenv("LEMBENCH_POWERCAP_ROOT", raising=False)
    meters, skipped = select_meters({})  # meters defaults to ["auto"]
    assert [m.name for m in meters] == ["codecarbon"]
    assert {"nvml", "rapl"} <= set(skipped)
    close(meters)


def test_auto_with_gpu_and_rapl_measures_and_skips_codecarbon(env, tmp_path: Path) -> None:
    fake = with_gpu(env)
    root = with_rapl(env, tmp_path / "powercap")
    meters, skipped = select_meters({"meters": ["auto"]})
    assert [type(m) for m in meters] == [NvmlMeter, RaplMeter]
    assert list(skipped) == ["amdsmi", "codecarbon"]
    assert skipped["codecarbon"] == "not needed: rapl measures cpu/dram"
    for m in meters:
        m.start()
    fake.gpus[0].energy_mj += 100_000
    (root / "intel-rapl:0" / "energy_uj").write_text("30000000")
    (root / "intel-rapl:0" / "intel-rapl:0:0" / "energy_uj").write_text("5000000")
    components = [c for m in meters for c in m.stop()]
    energy = combine(components)
    assert energy == {
        "energy_gpu_j": 100.0,
        "energy_cpu_j": 30.0,
        "energy_dram_j": 5.0,
        "energy_total_j": 135.0,
        "method": "nvml_counter+rapl",
        "is_estimate": False,
    }
    doc = {
        "method": energy["method"],
        "is_estimate": energy["is_estimate"],
        "components": [c.to_dict() for c in components],
        "baseline": None,
        "phases": None,
    }
    assert not iter_errors("result", doc, "/$defs/energy")
    close(meters)
    assert fake.refcount == 0


def test_explicit_list(env, tmp_path: Path) -> None:
    with_gpu(env)
    with_rapl(env, tmp_path / "powercap")
    meters, skipped = select_meters({"meters": ["rapl", "nvml"]})
    assert [m.name for m in meters] == ["rapl", "nvml"] and skipped == {}
    close(meters)


def test_explicit_unavailable_meter_raises_and_closes_the_others(env) -> None:
    fake = with_gpu(env)  # nvml works, rapl does not (no powercap)
    with pytest.raises(MeterUnavailable, match="absent"):
        select_meters({"meters": ["nvml", "rapl"]})
    assert fake.init_calls == 1 and fake.refcount == 0  # NVML was shut down again


def test_explicit_two_meters_on_one_domain_is_an_error(env) -> None:
    # rapl is unavailable here: a ValueError (not MeterUnavailable) shows the check comes first.
    with pytest.raises(ValueError, match="'rapl' and 'codecarbon' both measure cpu"):
        select_meters({"meters": ["rapl", "codecarbon"]})


def test_auto_mixed_with_names_is_an_error(env) -> None:
    with pytest.raises(ValueError, match="'auto' cannot be combined"):
        select_meters({"meters": ["auto", "nvml"]})


def test_unknown_meter_name(env) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'rapl'"):
        select_meters({"meters": ["rapll"]})


# -- combine --------------------------------------------------------------------------------------
def test_combine_measured_gpu_with_estimated_cpu_and_dram() -> None:
    energy = combine(
        [
            comp("codecarbon", "estimate_codecarbon", "dram", 5.0, est=True),
            comp("codecarbon", "estimate_codecarbon", "cpu", 20.0, est=True),
            comp("nvml", "nvml_power_poll", "gpu", 300.0),
        ]
    )
    assert energy == {
        "energy_gpu_j": 300.0,
        "energy_cpu_j": 20.0,
        "energy_dram_j": 5.0,
        "energy_total_j": 325.0,
        "method": "nvml_power_poll+estimate_codecarbon",
        "is_estimate": True,
    }


def test_combine_leaves_unmeasured_domains_none() -> None:
    energy = combine([comp("rapl", "rapl", "cpu", 12.5)])
    assert energy["energy_gpu_j"] is None and energy["energy_dram_j"] is None
    assert energy["energy_total_j"] == 12.5
    assert (energy["method"], energy["is_estimate"]) == ("rapl", False)


def test_combine_nothing() -> None:
    assert combine([]) == {
        "energy_gpu_j": None,
        "energy_cpu_j": None,
        "energy_dram_j": None,
        "energy_total_j": None,
        "method": "",
        "is_estimate": False,
    }


def test_combine_refuses_two_components_for_one_domain() -> None:
    with pytest.raises(ValueError, match="two energy components for domain cpu"):
        combine(
            [
                comp("rapl", "rapl", "cpu", 1.0),
                comp("codecarbon", "estimate_codecarbon", "cpu", 1.0, est=True),
            ]
        )
