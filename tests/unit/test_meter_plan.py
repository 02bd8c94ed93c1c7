"""What `lembench doctor` says about meters: which one measures each domain here, and how to
enable a better one (harness.hardware.selftest.meter_plan), with faked libraries."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from harness.contract import registry
from harness.hardware.selftest import meter_plan
from harness.meters import apple, chain
from lembench.doctor import Findings, _meters
from tests.fakes import fake_amdsmi, fake_pynvml
from tests.fakes.fake_amdsmi import FakeAmdGpu, FakeAmdsmi
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No NVIDIA library, no amdsmi, no powercap; codecarbon installed."""
    pytest.importorskip("codecarbon")
    for var in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(
        sys.modules, "pynvml", FakePynvml(init_error=fake_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    )
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    descriptions = registry.meter_descriptions()
    # Hardware presence is judged from paths: none of them exist on this fake machine.
    for name in ("nvml", "amdsmi", "rapl"):
        monkeypatch.setitem(
            descriptions,
            name,
            dataclasses.replace(descriptions[name], present_if=(str(tmp_path / "absent"),)),
        )
    return monkeypatch


def test_cpu_only_machine_uses_the_estimate_and_has_nothing_better(machine) -> None:
    plan = meter_plan()
    assert plan["used"] == {
        "cpu": {"meter": "codecarbon", "methods": ["estimate_codecarbon"], "estimate": True},
        "dram": {"meter": "codecarbon", "methods": ["estimate_codecarbon"], "estimate": True},
    }
    assert plan["hints"] == []  # no GPU or RAPL hardware here: nothing to enable


def test_nvidia_gpu_is_measured(machine) -> None:
    machine.setitem(sys.modules, "pynvml", FakePynvml([FakeGpu(energy_mj=0)]))
    plan = meter_plan()
    assert plan["used"]["gpu"] == {
        "meter": "nvml",
        "methods": ["nvml_counter", "nvml_power_poll"],
        "estimate": False,
    }


def test_amd_gpu_without_permission_says_join_the_render_group(machine, tmp_path) -> None:
    (tmp_path / "kfd").touch()
    descriptions = registry.meter_descriptions()
    machine.setitem(
        descriptions,
        "amdsmi",
        dataclasses.replace(descriptions["amdsmi"], present_if=(str(tmp_path / "kfd"),)),
    )
    machine.setitem(
        sys.modules,
        "amdsmi",
        FakeAmdsmi([FakeAmdGpu()], init_error=fake_amdsmi.AMDSMI_STATUS_NO_PERM),
    )
    (hint,) = meter_plan()["hints"]
    assert hint["meter"] == "amdsmi" and hint["domains"] == ["gpu"]
    assert hint["why"] == "amdsmi init failed: AMDSMI_STATUS_NO_PERM - Permission Denied"
    assert "render" in hint["enable"]
    f = Findings()
    _meters(f)
    item = next(i for i in f.items if i.topic == "energy gpu")
    assert item.ok is False and "render" in (item.fix or "")
    assert "amdsmi would measure it but cannot run" in item.detail
    estimate = next(i for i in f.items if i.topic == "energy cpu")
    assert estimate.ok is None and estimate.detail.startswith("estimate by codecarbon")


def test_mac_without_zeus_or_root_says_install_zeus_or_use_sudo(machine) -> None:
    machine.setattr(chain.sys, "platform", "darwin")
    machine.setattr(apple.sys, "platform", "darwin")
    machine.setitem(sys.modules, "zeus_apple_silicon", None)
    machine.setattr(apple.os, "geteuid", lambda: 501)
    plan = meter_plan("darwin")
    assert plan["used"]["cpu"]["meter"] == "codecarbon"
    (hint,) = plan["hints"]
    assert hint["meter"] == "apple"
    assert hint["domains"] == ["cpu", "gpu", "ane", "dram"]
    assert "zeus-apple-silicon" in hint["enable"] and "sudo" in hint["why"]
