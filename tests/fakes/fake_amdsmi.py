"""A fake of the ``amdsmi`` module (ROCm's AMD SMI library, ``pip install amdsmi``) for tests.

It mirrors the documented Python interface (ROCm/amdsmi ``py-interface/README.md`` and
``amdsmi_interface.py``, ROCm 6.2+) for the subset lembench uses:

- ``amdsmi_init(flags)`` / ``amdsmi_shut_down()``; every other call before init raises
  ``AmdSmiLibraryException`` with ``AMDSMI_STATUS_NOT_INIT``;
- errors are ``AmdSmiLibraryException(err_code)`` with ``get_error_code()`` / ``get_error_info()``;
- queries return dicts; a field the device does not report is the string ``"N/A"``;
- ``amdsmi_get_energy_count`` returns ``{"energy_accumulator", "counter_resolution" (uJ per
  count), "timestamp" (ns)}`` (``"power"`` instead of ``"energy_accumulator"`` before 6.2.1);
- ``amdsmi_get_power_info`` returns watts, ``amdsmi_get_power_cap_info`` microwatts.

Use: ``monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdsmi([FakeAmdGpu(...)]))``; tests drive the
devices through ``fake.gpus[i]`` (advance ``energy_count``, change ``power_w``...).
"""

from __future__ import annotations

import enum
import types
from dataclasses import dataclass, field

# amdsmi_status_t values (amdsmi.h).
AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34


class AmdSmiException(Exception):
    """Base of the library's exceptions (amdsmi_exception.py)."""


class AmdSmiLibraryException(AmdSmiException):
    """An error status from the C library: ``err_code`` and ``err_info``."""

    def __init__(self, err_code: int) -> None:
        self.err_code = err_code
        self.err_info = {
            AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
            AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
            AMDSMI_STATUS_INIT_ERROR: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
            AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
            AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
        }.get(err_code, f"AMDSMI_STATUS {err_code}")
        super().__init__(f"Error code:\n\t{err_code} | {self.err_info}")

    def get_error_code(self) -> int:
        return self.err_code

    def get_error_info(self) -> str:
        return self.err_info


class AmdSmiInitFlags(enum.IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1


class AmdSmiTemperatureType(enum.IntEnum):
    EDGE = 0
    HOTSPOT = 1
    JUNCTION = 1
    VRAM = 2


class AmdSmiTemperatureMetric(enum.IntEnum):
    CURRENT = 0


class AmdSmiClkType(enum.IntEnum):
    SYS = 0
    GFX = 0
    DF = 1
    DCEF = 2
    SOC = 3
    MEM = 4


@dataclass
class FakeAmdGpu:
    """One simulated AMD GPU. ``energy_count=None``: no energy counter; ``current_power_w="N/A"``:
    only the average socket power is reported (as on MI2xx). ``unsupported``: amdsmi function
    names that raise NOT_SUPPORTED on this device."""

    market_name: str = "AMD Instinct MI300X"
    uuid: str = ""
    energy_count: int | None = 0
    counter_resolution: float = 15.3  # uJ per count, as MI300X reports
    current_power_w: int | str = 300
    average_power_w: int | str = 300
    power_cap_uw: int = 750_000_000
    default_power_cap_uw: int = 750_000_000
    temp_edge_c: int | None = None  # MI300X reports no edge temperature
    temp_junction_c: int = 45
    gfx_clk_mhz: int = 2100
    mem_clk_mhz: int = 1300
    max_gfx_clk_mhz: int = 2100
    max_mem_clk_mhz: int = 1300
    gfx_activity: int = 0
    umc_activity: int = 0
    vram_total_mb: int = 196_592
    processes: list[tuple[int, int]] = field(default_factory=list)  # (pid, mem bytes)
    unsupported: set[str] = field(default_factory=set)
    legacy_energy_key: bool = False  # "power" instead of "energy_accumulator" (before 6.2.1)


@dataclass(frozen=True)
class _Handle:
    index: int


class FakeAmdsmi(types.ModuleType):
    """A module object standing in for ``amdsmi``."""

    def __init__(
        self,
        gpus: list[FakeAmdGpu] | None = None,
        *,
        init_error: int | None = None,
        driver_version: str = "6.8.5",
    ) -> None:
        super().__init__("amdsmi")
        self.gpus = list(gpus or [])
        for i, gpu in enumerate(self.gpus):
            if not gpu.uuid:
                gpu.uuid = f"{i:02x}ff74a1-0000-1000-80e3-{i:012x}"
        self.init_error = init_error
        self.driver_version = driver_version
        self.initialised = 0
        self.init_flags: list[int] = []
        self.shutdown_calls = 0
        self.calls: dict[str, int] = {}
        for name in (
            "AmdSmiException",
            "AmdSmiLibraryException",
            "AmdSmiInitFlags",
            "AmdSmiTemperatureType",
            "AmdSmiTemperatureMetric",
            "AmdSmiClkType",
        ):
            setattr(self, name, globals()[name])

    def _gpu(self, handle: object, function: str) -> FakeAmdGpu:
        if self.initialised <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise AmdSmiLibraryException(AMDSMI_STATUS_INVAL)
        self.calls[function] = self.calls.get(function, 0) + 1
        gpu = self.gpus[handle.index]
        if function in gpu.unsupported:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return gpu

    # -- the amdsmi API -------------------------------------------------------------------------
    def amdsmi_init(self, flag: int = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if self.init_error is not None:
            raise AmdSmiLibraryException(self.init_error)
        self.init_flags.append(int(flag))
        self.initialised += 1

    def amdsmi_shut_down(self) -> None:
        self.shutdown_calls += 1
        if self.initialised <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        self.initialised -= 1

    def amdsmi_get_processor_handles(self) -> list[_Handle]:
        if self.initialised <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        return [_Handle(i) for i in range(len(self.gpus))]

    def amdsmi_get_gpu_device_uuid(self, processor_handle: object) -> str:
        return self._gpu(processor_handle, "amdsmi_get_gpu_device_uuid").uuid

    def amdsmi_get_gpu_asic_info(self, processor_handle: object) -> dict[str, object]:
        gpu = self._gpu(processor_handle, "amdsmi_get_gpu_asic_info")
        return {
            "market_name": gpu.market_name,
            "vendor_id": 0x1002,
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "device_id": 0x74A1,
            "rev_id": 0,
            "asic_serial": "N/A",
        }

    def amdsmi_get_gpu_driver_info(self, processor_handle: object) -> dict[str, str]:
        self._gpu(processor_handle, "amdsmi_get_gpu_driver_info")
        return {"driver_name": "amdgpu", "driver_version": self.driver_version, "driver_date": ""}

    def amdsmi_get_energy_count(self, processor_handle: object) -> dict[str, object]:
        gpu = self._gpu(processor_handle, "amdsmi_get_energy_count")
        if gpu.energy_count is None:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        key = "power" if gpu.legacy_energy_key else "energy_accumulator"
        return {key: gpu.energy_count, "counter_resolution": gpu.counter_resolution, "timestamp": 0}

    def amdsmi_get_power_info(self, processor_handle: object) -> dict[str, object]:
        gpu = self._gpu(processor_handle, "amdsmi_get_power_info")
        return {
            "current_socket_power": gpu.current_power_w,
            "average_socket_power": gpu.average_power_w,
            "gfx_voltage": "N/A",
            "soc_voltage": "N/A",
            "mem_voltage": "N/A",
            "power_limit": gpu.power_cap_uw,
        }

    def amdsmi_get_power_cap_info(
        self, processor_handle: object, sensor_ind: int = 0
    ) -> dict[str, object]:
        gpu = self._gpu(processor_handle, "amdsmi_get_power_cap_info")
        return {
            "power_cap": gpu.power_cap_uw,
            "default_power_cap": gpu.default_power_cap_uw,
            "dpm_cap": 1,
            "min_power_cap": 0,
            "max_power_cap": gpu.power_cap_uw,
        }

    def amdsmi_get_temp_metric(
        self, processor_handle: object, sensor_type: int, metric: int
    ) -> int:
        gpu = self._gpu(processor_handle, "amdsmi_get_temp_metric")
        if sensor_type == AmdSmiTemperatureType.EDGE:
            if gpu.temp_edge_c is None:
                raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
            return gpu.temp_edge_c
        return gpu.temp_junction_c

    def amdsmi_get_clock_info(self, processor_handle: object, clock_type: int) -> dict[str, int]:
        gpu = self._gpu(processor_handle, "amdsmi_get_clock_info")
        if clock_type == AmdSmiClkType.MEM:
            return {"clk": gpu.mem_clk_mhz, "min_clk": 900, "max_clk": gpu.max_mem_clk_mhz}
        return {"clk": gpu.gfx_clk_mhz, "min_clk": 500, "max_clk": gpu.max_gfx_clk_mhz}

    def amdsmi_get_gpu_activity(self, processor_handle: object) -> dict[str, object]:
        gpu = self._gpu(processor_handle, "amdsmi_get_gpu_activity")
        return {
            "gfx_activity": gpu.gfx_activity,
            "umc_activity": gpu.umc_activity,
            "mm_activity": "N/A",
        }

    def amdsmi_get_gpu_vram_usage(self, processor_handle: object) -> dict[str, int]:
        gpu = self._gpu(processor_handle, "amdsmi_get_gpu_vram_usage")
        return {"vram_total": gpu.vram_total_mb, "vram_used": 0}

    def amdsmi_get_gpu_process_list(self, processor_handle: object) -> list[dict[str, object]]:
        gpu = self._gpu(processor_handle, "amdsmi_get_gpu_process_list")
        return [
            {
                "name": "python3",
                "pid": pid,
                "mem": mem,
                "engine_usage": {"gfx": 0, "enc": 0},
                "memory_usage": {"gtt_mem": 0, "cpu_mem": 0, "vram_mem": mem},
            }
            for pid, mem in gpu.processes
        ]
