"""Which GPUs are measured (harness.hardware.gpu.scope) and the device layer's energy counter, with
the fake NVML (tests/fakes/fake_pynvml.py)."""

from __future__ import annotations

import os
import sys

import pytest

from harness.hardware.gpu import EnergyCounter, GPUError, GPUUnavailable
from harness.hardware.gpu.nvidia import NvidiaGPUs
from harness.hardware.gpu.scope import experiment_positions, select
from harness.hardware.telemetry import Telemetry
from harness.meters.base import MeterUnavailable
from harness.meters.nvml import NvmlMeter
from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml

ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)

    def _install(gpus: list[FakeGpu], **kwargs) -> FakePynvml:
        fake = FakePynvml(gpus, **kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        return fake

    return _install


def test_cuda_visible_devices_1_of_2_measures_only_that_gpu(install, monkeypatch) -> None:
    fake = install([FakeGpu(energy_mj=0, util_gpu=95), FakeGpu(energy_mj=0)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    meter = NvmlMeter({}, config={"backend": "pytorch", "device": "auto"})
    with meter:
        fake.gpus[0].energy_mj += 50_000  # someone else's work on GPU 0
        fake.gpus[1].energy_mj += 2_500
    (c,) = meter.components
    assert c.energy_j == pytest.approx(2.5)  # GPU 0's 50 J are not the experiment's
    assert c.devices == [
        {
            "id": "1",
            "name": fake.gpus[1].name,
            "uuid": fake.gpus[1].uuid,
            "method": "nvml_counter",
            "energy_j": pytest.approx(2.5),
        }
    ]
    assert c.details["scope"] == {
        "CUDA_VISIBLE_DEVICES": "1",
        "experiment": "pytorch on one GPU (the first visible)",
    }
    desc = meter.describe()
    assert desc["not_measured"] == [{"index": 0, "uuid": fake.gpus[0].uuid}]
    meter.close()


def test_telemetry_watches_the_gpu_outside_the_set(install, monkeypatch) -> None:
    me = os.getpid()
    fake = install(
        [
            FakeGpu(util_gpu=95, power_mw=410_000, processes=[(4242, 10)]),
            FakeGpu(processes=[(me, 1), (777, 2)]),
        ]
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    tel = Telemetry.open({"backend": "pytorch", "device": "auto"})
    assert tel is not None
    assert [g["id"] for g in tel.read()] == ["1"]
    # Only the measured GPU's processes count for "other processes on our GPU".
    assert [(p["id"], p["pid"], p["ours"]) for p in tel.processes()] == [
        ("1", me, True),
        ("1", 777, False),
    ]
    assert tel.outside_load() == [
        {
            "id": "0",
            "uuid": fake.gpus[0].uuid,
            "util_gpu_pct": 95,
            "power_w": 410.0,
            "processes": 1,
        }
    ]
    fake.gpus[0].util_gpu = 0
    fake.gpus[0].processes = []
    assert tel.outside_load() == []  # idle again: nothing to warn about
    tel.close()
    assert fake.refcount == 0


def test_tensor_parallel_measures_the_first_tp_x_pp_visible_gpus(install, monkeypatch) -> None:
    install([FakeGpu() for _ in range(4)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,2,1")
    config = {"backend": "vllm", "vllm": {"tensor_parallel_size": 2}}
    meter = NvmlMeter({}, config=config)
    assert [d["index"] for d in meter.describe()["devices"]] == [3, 2]
    assert [d["index"] for d in meter.describe()["not_measured"]] == [0, 1]
    meter.close()
    too_many = {"backend": "tensorrt-llm", "tensorrt": {"tp_size": 2, "pp_size": 2}}
    with pytest.raises(MeterUnavailable, match="tp_size x pp_size = 4 but only 3 GPU"):
        NvmlMeter({}, config=too_many)


def test_experiment_positions() -> None:
    assert experiment_positions(None) == (None, None)
    assert experiment_positions({"backend": "llamacpp", "device": "cuda:1"}) == (
        [1],
        "device cuda:1",
    )
    assert experiment_positions({"backend": "pytorch", "device": "cuda"})[0] == [0]
    positions, why = experiment_positions(
        {"backend": "pytorch", "device": "auto", "pytorch": {"device_map": "auto"}}
    )
    assert positions is None and "device_map" in why
    assert experiment_positions({"backend": "openai", "device": "auto"}) == (None, None)
    assert experiment_positions({"backend": "vllm", "vllm": {"pipeline_parallel_size": 3}})[0] == [
        0,
        1,
        2,
    ]


def test_nvidia_visible_devices_by_uuid_and_in_a_container(install, monkeypatch) -> None:
    fake = install([FakeGpu() for _ in range(3)])
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", f"{fake.gpus[2].uuid},{fake.gpus[0].uuid}")
    with NvidiaGPUs() as gpus:
        scope = select(gpus)
        assert [g.index for g in scope.measured] == [2, 0]
        assert [g.index for g in scope.outside] == [1]
    # Inside a container NVML sees exactly the mounted GPUs, renumbered: host indices "5,7"
    # name the two GPUs it sees.
    install([FakeGpu(), FakeGpu()])
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "5,7")
    with NvidiaGPUs() as gpus:
        assert [g.index for g in select(gpus).measured] == [0, 1]
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
    with NvidiaGPUs() as gpus, pytest.raises(GPUUnavailable, match="no GPU is mounted"):
        select(gpus)
    # CUDA_VISIBLE_DEVICES then indexes what NVIDIA_VISIBLE_DEVICES left.
    fake = install([FakeGpu() for _ in range(3)])
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", f"{fake.gpus[2].uuid},{fake.gpus[1].uuid}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with NvidiaGPUs() as gpus:
        assert [g.index for g in select(gpus).measured] == [1]


def test_mig_instance_is_measured_as_its_parent_and_labelled(install, monkeypatch) -> None:
    fake = install(
        [
            FakeGpu(energy_mj=0),
            FakeGpu(energy_mj=0, mig=fake_pynvml.NVML_DEVICE_MIG_ENABLE, mig_uuids=["MIG-a"]),
        ]
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-a")
    meter = NvmlMeter({})
    with meter:
        fake.gpus[1].energy_mj += 1_000
    (c,) = meter.components
    assert c.devices[0]["id"] == "1" and c.devices[0]["mig"] == "parent GPU counter"
    assert any("MIG instance MIG-a" in n for n in c.details["notes"])
    assert any("whole physical GPU" in n for n in c.details["notes"])
    meter.close()


def test_energy_counter_wraps_once_and_refuses_to_go_backwards() -> None:
    wide = EnergyCounter(2**64 - 10, 15.3e-6, 2**64)
    assert EnergyCounter(5, 15.3e-6, 2**64).joules_since(wide) == pytest.approx(15 * 15.3e-6)
    with pytest.raises(GPUError, match="went backwards"):
        EnergyCounter(5, 1e-3).joules_since(EnergyCounter(10, 1e-3))
