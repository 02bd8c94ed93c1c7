"""Telemetry against a fake ``pynvml`` module (tests/fakes/fake_pynvml.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from harness.hardware.gpu import GPUError
from harness.hardware.telemetry import Telemetry, cuda_version_string, throttle_reasons
from harness.meters.nvml import NvmlMeter
from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml

READ_FIELDS = {
    "id",
    "power_w",
    "energy_mj",
    "temp_c",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "util_gpu_pct",
    "util_mem_pct",
    "throttle_reasons",
    "power_limit_w",
}


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)

    def _install(gpus: list[FakeGpu], **kwargs) -> FakePynvml:
        fake = FakePynvml(gpus, **kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        return fake

    return _install


def test_read_reports_every_field(install) -> None:
    fake = install(
        [
            FakeGpu(
                energy_mj=123_456,
                power_mw=301_200,
                temp_c=61,
                sm_clock_mhz=1755,
                mem_clock_mhz=2619,
                util_gpu=97,
                util_mem=45,
                clock_event_reasons=fake_pynvml.nvmlClocksEventReasonSwPowerCap,
                power_limit_mw=700_000,
            )
        ]
    )
    tel = Telemetry.open()
    assert tel is not None
    (gpu,) = tel.read()
    assert gpu == {
        "id": "0",
        "power_w": 301.2,
        "energy_mj": 123_456,
        "temp_c": 61,
        "sm_clock_mhz": 1755,
        "mem_clock_mhz": 2619,
        "util_gpu_pct": 97,
        "util_mem_pct": 45,
        "throttle_reasons": 0x4,
        "power_limit_w": 700.0,
    }
    json.dumps(gpu, allow_nan=False)
    fake.gpus[0].temp_c = 70
    assert tel.read()[0]["temp_c"] == 70  # read live each time
    tel.close()
    assert fake.refcount == 0


def test_not_supported_fields_are_none_and_not_asked_again(install) -> None:
    unsupported = {
        "nvmlDeviceGetTemperatureV",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetCurrentClocksThrottleReasons",
        "nvmlDeviceGetPowerManagementLimit",
        "nvmlDeviceGetClockInfo",
    }
    fake = install([FakeGpu(energy_mj=None, unsupported=unsupported), FakeGpu(temp_c=33)])
    tel = Telemetry.open()
    assert tel is not None
    first, second = tel.read()
    assert set(first) == READ_FIELDS
    assert first["energy_mj"] is None  # no counter (pre-Volta)
    for key in READ_FIELDS - {"id", "power_w"}:
        assert first[key] is None, key
    assert first["power_w"] == 100.0
    assert second["temp_c"] == 33 and second["util_gpu_pct"] == 0  # the other GPU is unaffected
    calls = dict(fake.calls)
    tel.read()
    tel.read()
    # Unsupported queries on GPU 0 are remembered: only GPU 1 asks again.
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == calls["nvmlDeviceGetUtilizationRates"] + 2
    assert fake.calls["nvmlDeviceGetClockInfo"] == calls["nvmlDeviceGetClockInfo"] + 4
    tel.close()


def test_newest_function_is_used_with_fallbacks(install) -> None:
    # An nvidia-ml-py without the "event reasons" name, a driver without nvmlDeviceGetTemperatureV.
    fake = install(
        [FakeGpu(temp_c=55, clock_event_reasons=0x20)],
        absent=("nvmlDeviceGetCurrentClocksEventReasons",),
        missing_functions=("nvmlDeviceGetTemperatureV",),
    )
    assert not hasattr(fake, "nvmlDeviceGetCurrentClocksEventReasons")
    tel = Telemetry.open()
    assert tel is not None
    for _ in range(3):
        (gpu,) = tel.read()
        assert gpu["temp_c"] == 55 and gpu["throttle_reasons"] == 0x20
    assert fake.calls["nvmlDeviceGetTemperatureV"] == 1  # tried once, then the fallback is kept
    assert fake.calls["nvmlDeviceGetTemperature"] == 3
    assert fake.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 3
    tel.close()


def test_current_functions_preferred(install) -> None:
    fake = install([FakeGpu()])
    tel = Telemetry.open()
    assert tel is not None
    tel.read()
    assert fake.calls.get("nvmlDeviceGetTemperatureV") == 1
    assert fake.calls.get("nvmlDeviceGetCurrentClocksEventReasons") == 1
    assert "nvmlDeviceGetTemperature" not in fake.calls
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" not in fake.calls
    tel.close()


def test_other_nvml_errors_are_raised(install) -> None:
    def lost() -> int:
        raise fake_pynvml.NVMLError(fake_pynvml.NVML_ERROR_GPU_IS_LOST)

    fake = install([FakeGpu(power_mw=lost)])
    tel = Telemetry.open()
    assert tel is not None
    with pytest.raises(GPUError, match="GPU is lost"):
        tel.read()
    tel.close()
    assert fake.refcount == 0


def test_processes(install) -> None:
    me = os.getpid()
    fake = install(
        [
            FakeGpu(processes=[(me, 2_000_000_000), (424242, None)]),
            FakeGpu(unsupported={"nvmlDeviceGetComputeRunningProcesses"}),
            FakeGpu(processes=[(777, 5)]),
        ]
    )
    tel = Telemetry.open()
    assert tel is not None
    assert tel.processes() == [
        {"id": "0", "pid": me, "used_memory_bytes": 2_000_000_000, "ours": True},
        {"id": "0", "pid": 424242, "used_memory_bytes": None, "ours": False},
        {"id": "2", "pid": 777, "used_memory_bytes": 5, "ours": False},
    ]
    fake.gpus[0].processes = []
    assert [p["pid"] for p in tel.processes()] == [777]
    tel.close()


def test_static(install) -> None:
    install(
        [
            FakeGpu(
                name="NVIDIA H100 PCIe",
                power_limit_mw=300_000,
                default_power_limit_mw=350_000,
                max_sm_clock_mhz=1755,
                max_mem_clock_mhz=1593,
                memory_total=81_559_000_000,
                ecc=fake_pynvml.NVML_FEATURE_DISABLED,
            ),
            FakeGpu(
                name="Tesla P100",
                mig=None,
                unsupported={"nvmlDeviceGetEccMode", "nvmlDeviceGetPowerManagementDefaultLimit"},
            ),
        ],
        driver_version="550.54.15",
        cuda_driver_version=12040,
    )
    tel = Telemetry.open()
    assert tel is not None
    first, second = tel.static()
    assert first == {
        "id": "0",
        "index": 0,
        "name": "NVIDIA H100 PCIe",
        "uuid": first["uuid"],
        "vendor": "nvidia",
        "driver": "550.54.15",
        "cuda_driver_version": "12.4",
        "power_limit_w": 300.0,
        "default_power_limit_w": 350.0,
        "persistence_mode": True,
        "mig_mode": False,
        "ecc_mode": False,
        "max_sm_clock_mhz": 1755,
        "max_mem_clock_mhz": 1593,
        "memory_total_bytes": 81_559_000_000,
    }
    assert first["uuid"].startswith("GPU-")
    assert second["mig_mode"] is None and second["ecc_mode"] is None
    assert second["default_power_limit_w"] is None and second["power_limit_w"] == 700.0
    json.dumps([first, second], allow_nan=False)
    tel.close()


def test_device_selection_matches_the_meter(install, monkeypatch) -> None:
    fake = install([FakeGpu() for _ in range(4)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"3,{fake.gpus[1].uuid}")
    meter = NvmlMeter({})
    tel = Telemetry.open()
    assert tel is not None
    assert [g["id"] for g in tel.read()] == ["3", "1"]
    assert [d["index"] for d in meter.describe()["devices"]] == [3, 1]
    assert [s["uuid"] for s in tel.static()] == [fake.gpus[3].uuid, fake.gpus[1].uuid]
    assert any("CUDA_DEVICE_ORDER" in n for n in tel.notes)
    meter.close()
    tel.close()
    assert fake.refcount == 0


def test_coexists_with_the_meter(install) -> None:
    # NVML init is reference counted: closing one user must not cut off the other.
    fake = install([FakeGpu(energy_mj=0)])
    meter = NvmlMeter({})
    tel = Telemetry.open()
    assert tel is not None and fake.refcount == 2
    tel.close()
    tel.close()  # idempotent
    assert fake.refcount == 1
    with meter:
        fake.gpus[0].energy_mj += 1000
    assert meter.components[0].energy_j == 1.0
    meter.close()
    assert fake.refcount == 0


def test_open_without_nvml_or_gpus(install, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert Telemetry.open() is None
    install([FakeGpu()], init_error=fake_pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    assert Telemetry.open() is None
    fake = install([])
    assert Telemetry.open() is None
    assert fake.refcount == 0  # the init was undone
    fake = install([FakeGpu()])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert Telemetry.open() is None
    assert fake.refcount == 0


def test_helpers() -> None:
    assert throttle_reasons(None) == [] and throttle_reasons(0) == []
    assert throttle_reasons(0x1 | 0x2) == []  # idle and application clocks are not throttling
    assert throttle_reasons(0x1 | 0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert throttle_reasons(0x400) == ["reliability"]  # the deprecated names' extra bits
    assert throttle_reasons(0x800) == ["0x800"]
    assert cuda_version_string(12040) == "12.4" and cuda_version_string(11080) == "11.8"
    assert cuda_version_string(None) is None
