"""AMD GPUs through AMD SMI (the ``amdsmi`` Python package, ROCm 6.1 and newer).

Written against the documented Python interface (ROCm/amdsmi ``py-interface/README.md``; the
C header ``amdsmi.h`` for units) and tested against ``tests/fakes/fake_amdsmi.py``, a fake of that
interface; not yet run on AMD hardware by lembench.

- Energy: ``amdsmi_get_energy_count`` -> ``energy_accumulator`` (``power`` before amdsmi 6.2.1)
  counts of ``counter_resolution`` microjoules, a ``uint64_t`` in the C API: wraps at 2**64
  counts. Some devices answer NOT_SUPPORTED: they are polled.
- Power: ``amdsmi_get_power_info`` in watts (integers): ``current_socket_power`` where reported,
  else ``average_socket_power`` ("N/A" marks a field the device does not report).
- Power cap: ``amdsmi_get_power_cap_info`` in microwatts.
- Processes: ``amdsmi_get_gpu_process_list`` (dicts with ``pid`` and ``mem``, ROCm 6.2+).
Reading needs access to ``/dev/kfd`` and ``/dev/dri/renderD*``: the ``render`` (and ``video``)
group, or ``--device /dev/kfd --device /dev/dri`` in containers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from harness.hardware.gpu.base import (
    GPU,
    EnergyCounter,
    GPUError,
    GPUNotSupported,
    GPUProcess,
    GPUs,
    GPUUnavailable,
)

T = TypeVar("T")

#: amdsmi_status_t values (amdsmi.h) that mean "this device cannot answer".
_NOT_SUPPORTED = 2
#: amdsmi's marker for a field a device does not report.
_NA = "N/A"
#: The energy accumulator is a uint64_t count.
ENERGY_COUNTER_WRAP = 2**64


def _number(value: Any) -> float | None:
    return None if value is None or value == _NA else float(value)


class AmdGPU(GPU):
    """One GPU as AMD SMI sees it."""

    vendor = "amd"

    def __init__(self, smi: Any, index: int, handle: Any) -> None:
        self._smi = smi
        self._handle = handle
        uuid = str(self._q(lambda: smi.amdsmi_get_gpu_device_uuid(handle), "uuid"))
        name = str(self._q(lambda: smi.amdsmi_get_gpu_asic_info(handle), "asic")["market_name"])
        super().__init__(index, uuid, name)

    def _q(self, get: Callable[[], T], what: str) -> T:
        """``get()`` with AMD SMI's errors mapped onto the device layer's."""
        try:
            return get()
        except self._smi.AmdSmiLibraryException as exc:
            where = f"AMD GPU {getattr(self, 'index', '?')}: {what}: {exc.get_error_info()}"
            if exc.get_error_code() == _NOT_SUPPORTED:
                raise GPUNotSupported(where) from exc
            raise GPUError(where) from exc
        except AttributeError as exc:  # an amdsmi release without this function
            raise GPUNotSupported(f"AMD GPU: {what}: {exc}") from exc

    def energy_counter(self) -> EnergyCounter:
        """``amdsmi_get_energy_count``: counts of ``counter_resolution`` uJ (uint64, wraps)."""
        info = self._q(lambda: self._smi.amdsmi_get_energy_count(self._handle), "energy")
        raw = info.get("energy_accumulator", info.get("power"))
        resolution = _number(info.get("counter_resolution"))
        if raw is None or raw == _NA or not resolution:
            raise GPUNotSupported(f"AMD GPU {self.index}: energy counter not reported")
        return EnergyCounter(int(raw), resolution * 1e-6, ENERGY_COUNTER_WRAP)

    def power_mw(self) -> int:
        info = self._q(lambda: self._smi.amdsmi_get_power_info(self._handle), "power")
        for key in ("current_socket_power", "average_socket_power"):
            watts = _number(info.get(key))
            if watts is not None:
                return int(watts * 1000)
        raise GPUNotSupported(f"AMD GPU {self.index}: no socket power reported")

    def _cap(self) -> dict[str, Any]:
        return self._q(lambda: self._smi.amdsmi_get_power_cap_info(self._handle), "power cap")

    def power_limit_mw(self) -> int:
        return int(self._cap()["power_cap"]) // 1000  # uW -> mW

    def default_power_limit_mw(self) -> int:
        return int(self._cap()["default_power_cap"]) // 1000

    def temperature_c(self) -> float:
        smi = self._smi
        # Instinct parts report no edge sensor: junction (hotspot) is their core temperature.
        for sensor in ("EDGE", "JUNCTION"):
            with contextlib.suppress(GPUNotSupported):
                return float(
                    self._q(
                        lambda s=sensor: smi.amdsmi_get_temp_metric(
                            self._handle,
                            getattr(smi.AmdSmiTemperatureType, s),
                            smi.AmdSmiTemperatureMetric.CURRENT,
                        ),
                        "temperature",
                    )
                )
        raise GPUNotSupported(f"AMD GPU {self.index}: no temperature sensor")

    def _clock(self, kind: str) -> dict[str, Any]:
        smi = self._smi
        return self._q(
            lambda: smi.amdsmi_get_clock_info(self._handle, getattr(smi.AmdSmiClkType, kind)),
            f"{kind} clock",
        )

    def clocks_mhz(self) -> tuple[int | None, int | None]:
        gfx, mem = self._clock("GFX"), self._clock("MEM")
        return gfx.get("clk"), mem.get("clk")

    def max_clocks_mhz(self) -> tuple[int | None, int | None]:
        gfx, mem = self._clock("GFX"), self._clock("MEM")
        return gfx.get("max_clk"), mem.get("max_clk")

    def utilization_pct(self) -> tuple[float | None, float | None]:
        info = self._q(lambda: self._smi.amdsmi_get_gpu_activity(self._handle), "activity")
        return _number(info.get("gfx_activity")), _number(info.get("umc_activity"))

    def processes(self) -> list[GPUProcess]:
        procs = self._q(lambda: self._smi.amdsmi_get_gpu_process_list(self._handle), "processes")
        out = []
        for p in procs:
            if not isinstance(p, dict):  # before ROCm 6.2: handles, not process records
                raise GPUNotSupported(f"AMD GPU {self.index}: process list without details")
            mem = _number(p.get("mem"))
            out.append(GPUProcess(int(p["pid"]), None if mem is None else int(mem)))
        return out

    def memory_total_bytes(self) -> int | None:
        with contextlib.suppress(GPUError):
            info = self._q(lambda: self._smi.amdsmi_get_gpu_vram_usage(self._handle), "vram")
            total = _number(info.get("vram_total"))
            return None if total is None else int(total) * 2**20  # MB
        return None


class AmdGPUs(GPUs):
    """Every GPU AMD SMI sees; ``AmdGPUs()`` initialises it (GPUUnavailable when it cannot)."""

    vendor = "amd"
    # ROCR_VISIBLE_DEVICES filters at the runtime, HIP_VISIBLE_DEVICES (or CUDA_VISIBLE_DEVICES,
    # which HIP honours when its own is unset) then indexes what is left (ROCm docs, "GPU
    # isolation techniques").
    visible_env = (("ROCR_VISIBLE_DEVICES",), ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"))

    def __init__(self) -> None:
        try:
            import amdsmi
        except ImportError as exc:
            raise GPUUnavailable("amdsmi is not installed (pip install amdsmi)") from exc
        except OSError as exc:  # the package is there but libamd_smi.so is not (no ROCm)
            raise GPUUnavailable(f"amdsmi cannot load the ROCm library: {exc}") from exc
        self._smi = amdsmi
        try:
            amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
        except amdsmi.AmdSmiException as exc:
            raise GPUUnavailable(f"amdsmi init failed: {_info(exc)}") from exc
        try:
            handles = amdsmi.amdsmi_get_processor_handles()
            if not handles:
                raise GPUUnavailable(
                    "amdsmi sees no GPU (no /dev/kfd access? join the render group)"
                )
            gpus = [AmdGPU(amdsmi, i, h) for i, h in enumerate(handles)]
            driver = None
            with contextlib.suppress(amdsmi.AmdSmiException, AttributeError, KeyError):
                driver = str(amdsmi.amdsmi_get_gpu_driver_info(handles[0])["driver_version"])
        except BaseException as exc:
            self._shutdown()
            if isinstance(exc, GPUUnavailable):
                raise
            if isinstance(exc, (amdsmi.AmdSmiException, GPUError)):
                raise GPUUnavailable(f"amdsmi query failed: {_info(exc)}") from exc
            raise
        super().__init__(gpus, driver)

    def _shutdown(self) -> None:
        with contextlib.suppress(self._smi.AmdSmiException):
            self._smi.amdsmi_shut_down()


def _info(exc: BaseException) -> str:
    get = getattr(exc, "get_error_info", None)
    return str(get()) if callable(get) else str(exc)
