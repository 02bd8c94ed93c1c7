"""NvmlMeter against a fake ``pynvml`` module (tests/fakes/fake_pynvml.py)."""

from __future__ import annotations

import sys
import time

import pytest

from harness.contract.schemas import iter_errors
from harness.meters.base import MeterUnavailable
from harness.meters.nvml import NvmlMeter
from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    """Put a FakePynvml with the given GPUs in place of pynvml; a clean CUDA environment."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)

    def _install(gpus: list[FakeGpu], **kwargs) -> FakePynvml:
        fake = FakePynvml(gpus, **kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        return fake

    return _install


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _valid(component) -> None:
    errors = iter_errors("result", component.to_dict(), "/$defs/energy_component")
    assert not errors, errors[0].message


def test_counter_energy_is_the_delta(install) -> None:
    fake = install([FakeGpu(energy_mj=1_000_000), FakeGpu(energy_mj=5)])
    meter = NvmlMeter({})
    with meter:
        fake.gpus[0].energy_mj += 12_345
        fake.gpus[1].energy_mj += 500
    (c,) = meter.components
    _valid(c)
    assert (c.meter, c.domain, c.method, c.is_estimate) == ("nvml", "gpu", "nvml_counter", False)
    assert c.energy_j == pytest.approx(12.845)
    assert [(d["id"], d["energy_j"]) for d in c.devices] == [("0", 12.345), ("1", 0.5)]
    assert c.details["method_per_device"] == {"0": "nvml_counter", "1": "nvml_counter"}
    assert all(g.power_calls <= 1 for g in fake.gpus)  # counters are not polled
    meter.close()


def test_meter_is_reused_for_several_windows(install) -> None:
    fake = install([FakeGpu(energy_mj=0)])
    meter = NvmlMeter({})
    results = []
    for step in (1000, 2000, 3000):
        meter.start()
        fake.gpus[0].energy_mj += step
        results.append(meter.stop()[0].energy_j)
    assert results == [1.0, 2.0, 3.0]
    meter.close()
    assert fake.refcount == 0


def test_no_counter_falls_back_to_polling_constant_power(install) -> None:
    fake = install([FakeGpu(energy_mj=None, power_mw=200_000)])  # 200 W, no energy counter
    meter = NvmlMeter({})
    with meter:
        time.sleep(0.35)
    (c,) = meter.components
    _valid(c)
    assert c.method == "nvml_power_poll"
    assert c.details["poll_samples"] >= 3  # the thread really polled (10 Hz) between the edges
    assert c.energy_j == pytest.approx(200.0 * c.details["duration_s"], rel=0.02)
    assert fake.gpus[0].power_calls >= 4
    meter.close()


def test_polling_integrates_with_the_trapezoid_rule(install) -> None:
    fake = install([FakeGpu(energy_mj=None, power_mw=100_000)])
    clock = FakeClock()
    meter = NvmlMeter({}, poll_interval_s=3600, clock=clock)  # only the two edge samples
    meter.start()
    clock.t += 2.0
    fake.gpus[0].power_mw = 300_000
    (c,) = meter.stop()
    assert c.energy_j == pytest.approx((100 + 300) / 2 * 2.0)
    assert c.details["duration_s"] == pytest.approx(2.0)
    meter.close()


def test_mixed_devices_label_the_component_polled(install) -> None:
    fake = install([FakeGpu(energy_mj=0), FakeGpu(energy_mj=None, power_mw=50_000)])
    clock = FakeClock()
    meter = NvmlMeter({}, poll_interval_s=3600, clock=clock)
    meter.start()
    fake.gpus[0].energy_mj += 7_000
    clock.t += 1.0
    (c,) = meter.stop()
    assert c.method == "nvml_power_poll"
    assert c.details["method_per_device"] == {"0": "nvml_counter", "1": "nvml_power_poll"}
    assert [d["method"] for d in c.devices] == ["nvml_counter", "nvml_power_poll"]
    assert c.energy_j == pytest.approx(7.0 + 50.0)
    assert {d["method"] for d in meter.describe()["devices"]} == {"nvml_counter", "nvml_power_poll"}
    meter.close()


def test_cuda_visible_devices_indices(install, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install([FakeGpu(energy_mj=0) for _ in range(4)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    meter = NvmlMeter({})
    with meter:
        for i, gpu in enumerate(fake.gpus):
            gpu.energy_mj += 1000 * (i + 1)
    (c,) = meter.components
    assert [d["id"] for d in c.devices] == ["2", "0"]
    assert c.energy_j == pytest.approx(3.0 + 1.0)  # GPUs 1 and 3 are not the workload's
    assert any("CUDA_DEVICE_ORDER" in n for n in c.details["notes"])
    meter.close()


def test_cuda_visible_devices_uuids_and_prefixes(install, monkeypatch) -> None:
    fake = install([FakeGpu(uuid=f"GPU-{c}aaa-bbbb") for c in "0123"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{fake.gpus[3].uuid}, GPU-1a")
    meter = NvmlMeter({})
    assert [d["index"] for d in meter.describe()["devices"]] == [3, 1]
    meter.close()


def test_cuda_visible_devices_mig_uuid_maps_to_its_gpu(install, monkeypatch) -> None:
    install([FakeGpu(), FakeGpu(mig=fake_pynvml.NVML_DEVICE_MIG_ENABLE, mig_uuids=["MIG-x1"])])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-x1")
    meter = NvmlMeter({})
    desc = meter.describe()
    assert [d["index"] for d in desc["devices"]] == [1]
    assert desc["devices"][0]["mig_enabled"] is True
    assert any("whole physical GPU" in n for n in desc["notes"])
    meter.close()


def test_cuda_visible_devices_invalid_entry_ends_the_list(install, monkeypatch) -> None:
    install([FakeGpu(), FakeGpu()])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,7,0")  # CUDA stops at 7
    meter = NvmlMeter({})
    assert [d["index"] for d in meter.describe()["devices"]] == [1]
    meter.close()


def test_cuda_visible_devices_not_understood_measures_all(install, monkeypatch) -> None:
    install([FakeGpu(), FakeGpu()])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "all")
    meter = NvmlMeter({})
    assert [d["index"] for d in meter.describe()["devices"]] == [0, 1]
    assert any("not understood" in n for n in meter.describe()["notes"])
    meter.close()


@pytest.mark.parametrize("value", ["", "7", "GPU-nope"])
def test_cuda_visible_devices_selecting_nothing_is_unavailable(install, monkeypatch, value) -> None:
    fake = install([FakeGpu()])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    with pytest.raises(MeterUnavailable, match="CUDA_VISIBLE_DEVICES"):
        NvmlMeter({})
    assert fake.refcount == 0  # NVML was shut down again


def test_no_devices_is_unavailable(install) -> None:
    fake = install([])
    with pytest.raises(MeterUnavailable, match="no GPU"):
        NvmlMeter({})
    assert fake.refcount == 0


def test_init_error_is_unavailable(install) -> None:
    install([FakeGpu()], init_error=fake_pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(MeterUnavailable, match="NVML init failed: Driver Not Loaded"):
        NvmlMeter({})


def test_missing_pynvml_is_unavailable(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with pytest.raises(MeterUnavailable, match="nvidia-ml-py"):
        NvmlMeter({})


def test_gpu_without_counter_or_power_is_unavailable(install) -> None:
    def no_power() -> int:
        raise fake_pynvml.NVMLError(fake_pynvml.NVML_ERROR_NOT_SUPPORTED)

    fake = install([FakeGpu(energy_mj=None, power_mw=no_power)])
    with pytest.raises(MeterUnavailable, match="neither an energy counter nor power"):
        NvmlMeter({})
    assert fake.refcount == 0


def test_polling_failure_surfaces_at_stop(install) -> None:
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] > 2:  # probe and start edge work, the thread's first poll fails
            raise fake_pynvml.NVMLError(fake_pynvml.NVML_ERROR_GPU_IS_LOST)
        return 100_000

    install([FakeGpu(energy_mj=None, power_mw=flaky)])
    meter = NvmlMeter({}, poll_interval_s=0.01)
    meter.start()
    time.sleep(0.1)
    with pytest.raises(RuntimeError, match="GPU is lost"):
        meter.stop()
    meter.close()


def test_counter_going_backwards_is_an_error(install) -> None:
    fake = install([FakeGpu(energy_mj=10_000)])
    meter = NvmlMeter({})
    meter.start()
    fake.gpus[0].energy_mj = 0
    with pytest.raises(RuntimeError, match="went backwards"):
        meter.stop()
    meter.close()


def test_describe_and_close(install) -> None:
    fake = install([FakeGpu(name="Tesla V100-SXM2-16GB", mig=None)], driver_version="535.1")
    meter = NvmlMeter({})
    desc = meter.describe()
    assert desc["name"] == "nvml" and desc["domains"] == ["gpu"]
    assert desc["driver_version"] == "535.1" and desc["nvml_version"]
    assert desc["devices"] == [
        {
            "index": 0,
            "name": "Tesla V100-SXM2-16GB",
            "uuid": fake.gpus[0].uuid,
            "method": "nvml_counter",
            "mig_enabled": None,
        }
    ]
    meter.close()
    meter.close()  # idempotent
    assert fake.refcount == 0 and fake.shutdown_calls == 1


def test_read_cumulative_counter(install) -> None:
    fake = install([FakeGpu(energy_mj=1_000), FakeGpu(energy_mj=0)])
    meter = NvmlMeter({})
    assert meter.update_period_s == 0.1
    assert meter.read_cumulative() is None  # no window open
    meter.start()
    assert meter.read_cumulative() == {"gpu": 0.0}
    fake.gpus[0].energy_mj += 2_500
    fake.gpus[1].energy_mj += 500
    assert meter.read_cumulative() == {"gpu": pytest.approx(3.0)}
    fake.gpus[0].energy_mj += 1_000
    (c,) = meter.stop()
    assert c.energy_j == pytest.approx(4.0)
    assert meter.read_cumulative() is None
    meter.close()


def test_read_cumulative_polled_is_the_integral_so_far(install) -> None:
    fake = install([FakeGpu(energy_mj=None, power_mw=100_000)])
    clock = FakeClock()
    meter = NvmlMeter({}, poll_interval_s=3600, clock=clock)  # no thread samples: all by hand
    assert meter.update_period_s == 3600
    meter.start()
    clock.t += 1.0
    assert meter.read_cumulative() == {"gpu": pytest.approx(100.0)}  # a fresh sample now
    fake.gpus[0].power_mw = 300_000
    clock.t += 1.0
    assert meter.read_cumulative() == {"gpu": pytest.approx(300.0)}  # + (100 + 300) / 2 x 1 s
    (c,) = meter.stop()
    assert c.energy_j == pytest.approx(300.0)  # the timeline's samples are part of the integral
    assert c.details["poll_samples"] == 4
    meter.close()


def test_read_cumulative_counter_backwards_raises(install) -> None:
    fake = install([FakeGpu(energy_mj=10_000)])
    meter = NvmlMeter({})
    meter.start()
    fake.gpus[0].energy_mj = 5
    with pytest.raises(RuntimeError, match="went backwards"):
        meter.read_cumulative()
    meter.close()


def test_update_period_mixed_devices(install) -> None:
    install([FakeGpu(energy_mj=0), FakeGpu(energy_mj=None)])
    meter = NvmlMeter({}, poll_interval_s=0.25)
    assert meter.update_period_s == 0.25
    meter.close()
