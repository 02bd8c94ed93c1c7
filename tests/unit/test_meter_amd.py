"""AmdsmiMeter and the AMD device layer against a fake of amdsmi's documented interface
(tests/fakes/fake_amdsmi.py)."""

from __future__ import annotations

import sys

import pytest

from harness.contract.schemas import iter_errors
from harness.hardware.gpu import GPUNotSupported
from harness.hardware.gpu.amd import ENERGY_COUNTER_WRAP, AmdGPUs
from harness.hardware.telemetry import Telemetry
from harness.meters.amd import AmdsmiMeter
from harness.meters.base import MeterUnavailable
from tests.fakes import fake_amdsmi
from tests.fakes.fake_amdsmi import FakeAmdGpu, FakeAmdsmi


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    for var in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # an AMD machine: no NVML

    def _install(gpus: list[FakeAmdGpu], **kwargs) -> FakeAmdsmi:
        fake = FakeAmdsmi(gpus, **kwargs)
        monkeypatch.setitem(sys.modules, "amdsmi", fake)
        return fake

    return _install


class FakeClock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def test_counter_delta_uses_the_reported_resolution(install) -> None:
    fake = install([FakeAmdGpu(energy_count=1_000, counter_resolution=15.3)])
    meter = AmdsmiMeter({})
    with meter:
        fake.gpus[0].energy_count += 1_000_000  # 1e6 counts x 15.3 uJ = 15.3 J
    (c,) = meter.components
    assert not iter_errors("result", c.to_dict(), "/$defs/energy_component")
    assert (c.meter, c.method, c.domain, c.is_estimate) == (
        "amdsmi",
        "amdsmi_counter",
        "gpu",
        False,
    )
    assert c.energy_j == pytest.approx(15.3)
    assert c.devices[0]["uuid"] == fake.gpus[0].uuid
    assert fake.init_flags == [int(fake_amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)]
    meter.close()
    assert fake.initialised == 0


def test_counter_wraparound_is_undone(install) -> None:
    fake = install([FakeAmdGpu(energy_count=ENERGY_COUNTER_WRAP - 200, counter_resolution=1.0)])
    meter = AmdsmiMeter({})
    with meter:
        fake.gpus[0].energy_count = 300  # wrapped past 2**64 counts
    (c,) = meter.components
    assert c.energy_j == pytest.approx(500e-6)
    assert c.details["counter_readings"]["0"] == {
        "start": ENERGY_COUNTER_WRAP - 200,
        "end": 300,
        "resolution_j": 1e-6,
        "wrapped": True,
    }
    meter.close()


def test_legacy_power_key_before_amdsmi_6_2_1(install) -> None:
    fake = install([FakeAmdGpu(energy_count=0, counter_resolution=15.3, legacy_energy_key=True)])
    meter = AmdsmiMeter({})
    with meter:
        fake.gpus[0].energy_count += 2_000
    assert meter.components[0].energy_j == pytest.approx(2_000 * 15.3e-6)
    meter.close()


def test_device_without_energy_counter_is_polled_on_average_power(install) -> None:
    # No counter, and no current power reading (as on MI2xx): the driver's average power is used.
    install([FakeAmdGpu(energy_count=None, current_power_w="N/A", average_power_w=250)])
    clock = FakeClock()
    meter = AmdsmiMeter({}, poll_interval_s=3600, clock=clock)  # only the edge samples
    meter.start()
    clock.t += 4.0
    (c,) = meter.stop()
    assert c.method == "amdsmi_power_poll"
    assert c.energy_j == pytest.approx(250.0 * 4.0)
    assert c.details["method_per_device"] == {"0": "amdsmi_power_poll"}
    meter.close()


def test_device_without_counter_or_power_is_unavailable(install) -> None:
    fake = install([FakeAmdGpu(energy_count=None, current_power_w="N/A", average_power_w="N/A")])
    with pytest.raises(MeterUnavailable, match="neither an energy counter nor power"):
        AmdsmiMeter({})
    assert fake.initialised == 0


def test_hip_visible_devices_scope_and_rocr_first(install, monkeypatch) -> None:
    fake = install([FakeAmdGpu(energy_count=0) for _ in range(4)])
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "1,2,3")
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "2")  # the third of what ROCR left: GPU 3
    meter = AmdsmiMeter({})
    with meter:
        for i, gpu in enumerate(fake.gpus):
            gpu.energy_count += 1_000_000 * (i + 1)
    (c,) = meter.components
    assert [d["id"] for d in c.devices] == ["3"]
    assert c.energy_j == pytest.approx(4 * 15.3)
    assert c.details["scope"] == {"ROCR_VISIBLE_DEVICES": "1,2,3", "HIP_VISIBLE_DEVICES": "2"}
    meter.close()
    monkeypatch.delenv("ROCR_VISIBLE_DEVICES")
    monkeypatch.delenv("HIP_VISIBLE_DEVICES")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", fake.gpus[2].uuid[:10])  # HIP honours it too
    meter = AmdsmiMeter({}, config={"backend": "vllm", "vllm": {"tensor_parallel_size": 1}})
    assert [d["uuid"] for d in meter.describe()["devices"]] == [fake.gpus[2].uuid]
    meter.close()


def test_init_failure_and_no_gpu_are_unavailable(install) -> None:
    install([FakeAmdGpu()], init_error=fake_amdsmi.AMDSMI_STATUS_DRIVER_NOT_LOADED)
    with pytest.raises(MeterUnavailable, match=r"amdsmi init failed: .*Driver not loaded"):
        AmdsmiMeter({})
    fake = install([])
    with pytest.raises(MeterUnavailable, match="render group"):
        AmdsmiMeter({})
    assert fake.initialised == 0


def test_missing_amdsmi_is_unavailable(install, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    with pytest.raises(MeterUnavailable, match="pip install amdsmi"):
        AmdsmiMeter({})


def test_telemetry_on_amd(install) -> None:
    fake = install(
        [
            FakeAmdGpu(
                energy_count=1_000,
                current_power_w=512,
                gfx_activity=88,
                umc_activity=40,
                temp_junction_c=71,
                processes=[(4242, 2**30)],
                unsupported={"amdsmi_get_power_cap_info"},
            )
        ]
    )
    tel = Telemetry.open()
    assert tel is not None and tel.vendor == "amd"
    (gpu,) = tel.read()
    assert gpu == {
        "id": "0",
        "power_w": 512.0,
        "energy_mj": round(1_000 * 15.3e-3),
        "temp_c": 71.0,  # no edge sensor on MI300X: junction
        "sm_clock_mhz": 2100,
        "mem_clock_mhz": 1300,
        "util_gpu_pct": 88.0,
        "util_mem_pct": 40.0,
        "throttle_reasons": None,
        "power_limit_w": None,  # NOT_SUPPORTED here: None, and not asked again
    }
    calls = fake.calls["amdsmi_get_power_cap_info"]
    tel.read()
    assert fake.calls["amdsmi_get_power_cap_info"] == calls
    assert tel.processes() == [{"id": "0", "pid": 4242, "used_memory_bytes": 2**30, "ours": False}]
    (static,) = tel.static()
    assert static["vendor"] == "amd" and static["name"] == "AMD Instinct MI300X"
    assert static["memory_total_bytes"] == 196_592 * 2**20 and static["driver"] == "6.8.5"
    tel.close()
    assert fake.initialised == 0


def test_device_layer_maps_not_supported(install) -> None:
    install([FakeAmdGpu(unsupported={"amdsmi_get_gpu_activity"})])
    with AmdGPUs() as gpus, pytest.raises(GPUNotSupported, match="activity"):
        gpus.gpus[0].utilization_pct()
