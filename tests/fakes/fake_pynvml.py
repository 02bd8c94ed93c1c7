"""A fake of the ``pynvml`` module (from the ``nvidia-ml-py`` package) for unit tests.

It mirrors the names, signatures, return types and exceptions of the real module (nvidia-ml-py 13.x)
for the subset lembench uses, so code under test cannot tell the difference:

- every call before ``nvmlInit`` raises ``NVMLError_Uninitialized``; nvmlShutdown is refcounted;
- ``NVMLError(code)`` returns the per-code subclass (``NVMLError_NotSupported``...) with ``.value``;
- strings come back as ``str`` (the real module decodes bytes), handles are opaque objects.

Use it by putting an instance into ``sys.modules``::

    fake = FakePynvml([FakeGpu(energy_mj=0), FakeGpu(energy_mj=None, power_mw=150_000)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)

Tests drive the devices through ``fake.gpus[i]`` (advance ``energy_mj``, change ``power_mw``,
set ``temp_c``...). ``FakeGpu(unsupported={"nvmlDeviceGetTemperature"})`` makes that query raise
NOT_SUPPORTED on that device; ``FakePynvml(missing_functions=...)`` makes it raise
FUNCTION_NOT_FOUND everywhere (a driver too old for the symbol) and ``FakePynvml(absent=...)``
removes the attribute (an nvidia-ml-py too old to have it).
"""

from __future__ import annotations

import string
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_UNKNOWN = 999

NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1
NVML_DEVICE_MIG_DISABLE = 0x0
NVML_DEVICE_MIG_ENABLE = 0x1

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_CLOCK_VIDEO = 3

nvmlTemperature_v1 = 0x100000C

# Clock event ("throttle") reason bits; the Throttle names are the deprecated aliases.
nvmlClocksEventReasonGpuIdle = 0x0000000000000001
nvmlClocksEventReasonApplicationsClocksSetting = 0x0000000000000002
nvmlClocksEventReasonSwPowerCap = 0x0000000000000004
nvmlClocksEventReasonHwSlowdown = 0x0000000000000008
nvmlClocksEventReasonSyncBoost = 0x0000000000000010
nvmlClocksEventReasonSwThermalSlowdown = 0x0000000000000020
nvmlClocksEventReasonHwThermalSlowdown = 0x0000000000000040
nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x0000000000000080
nvmlClocksEventReasonDisplayClockSetting = 0x0000000000000100
nvmlClocksEventReasonNone = 0x0000000000000000
nvmlClocksThrottleReasonGpuIdle = nvmlClocksEventReasonGpuIdle
nvmlClocksThrottleReasonApplicationsClocksSetting = nvmlClocksEventReasonApplicationsClocksSetting
nvmlClocksThrottleReasonSwPowerCap = nvmlClocksEventReasonSwPowerCap
nvmlClocksThrottleReasonHwSlowdown = nvmlClocksEventReasonHwSlowdown
nvmlClocksThrottleReasonSyncBoost = nvmlClocksEventReasonSyncBoost
nvmlClocksThrottleReasonSwThermalSlowdown = nvmlClocksEventReasonSwThermalSlowdown
nvmlClocksThrottleReasonHwThermalSlowdown = nvmlClocksEventReasonHwThermalSlowdown
nvmlClocksThrottleReasonHwPowerBrakeSlowdown = nvmlClocksEventReasonHwPowerBrakeSlowdown
nvmlClocksThrottleReasonDisplayClockSetting = nvmlClocksEventReasonDisplayClockSetting
nvmlClocksThrottleReasonBoardLimit = 0x0000000000000200
nvmlClocksThrottleReasonReliability = 0x0000000000000400
nvmlClocksThrottleReasonNone = 0x0000000000000000

_ERROR_STRINGS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Like the real one: ``NVMLError(code)`` is an instance of the code's subclass."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: RUF012 - mirrors pynvml
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return _ERROR_STRINGS.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _make_error_classes() -> dict[str, type[NVMLError]]:
    # Same naming rule as pynvml._extractNVMLErrorsAsClasses: NVML_ERROR_NOT_SUPPORTED ->
    # NVMLError_NotSupported.
    classes = {}
    for const, code in list(globals().items()):
        if not const.startswith("NVML_ERROR_"):
            continue
        cls_name = "NVMLError_" + string.capwords(const[len("NVML_ERROR_") :], "_").replace("_", "")
        cls = type(cls_name, (NVMLError,), {"__module__": __name__})
        NVMLError._valClassMapping[code] = cls
        classes[cls_name] = cls
    return classes


_ERROR_CLASSES = _make_error_classes()
globals().update(_ERROR_CLASSES)


@dataclass
class FakeGpu:
    """One simulated GPU. ``energy_mj=None``: no energy counter (pre-Volta); ``mig=None``: MIG query
    not supported. ``power_mw`` may be a callable, evaluated at each ``nvmlDeviceGetPowerUsage``.
    ``unsupported``: names of pynvml functions that raise NOT_SUPPORTED on this device.
    ``processes``: (pid, used bytes or None) of compute processes on it."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""
    energy_mj: int | None = 0
    power_mw: int | Callable[[], int] = 100_000
    mig: int | None = NVML_DEVICE_MIG_DISABLE
    mig_uuids: list[str] = field(default_factory=list)
    power_calls: int = 0
    temp_c: int = 40
    sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    max_sm_clock_mhz: int = 1980
    max_mem_clock_mhz: int = 2619
    util_gpu: int = 0
    util_mem: int = 0
    clock_event_reasons: int = nvmlClocksEventReasonGpuIdle
    power_limit_mw: int = 700_000
    default_power_limit_mw: int = 700_000
    persistence: int = NVML_FEATURE_ENABLED
    ecc: int = NVML_FEATURE_ENABLED
    memory_total: int = 80 * 1024**3
    memory_used: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass(frozen=True)
class _MigHandle:
    parent: int
    uuid: str


class _Struct:
    """Like the real module's ctypes structs / nvmlFriendlyObject: fields as attributes."""

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"_Struct({self.__dict__})"


class FakePynvml(types.ModuleType):
    """A module object standing in for ``pynvml``, with its own simulated devices."""

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        init_error: int | None = None,
        driver_version: str = "550.54.15",
        nvml_version: str = "12.550.54.15",
        cuda_driver_version: int = 12040,
        missing_functions: tuple[str, ...] = (),
        absent: tuple[str, ...] = (),
    ) -> None:
        self._absent = frozenset(absent)
        super().__init__("pynvml")
        self.gpus = list(gpus or [])
        for i, gpu in enumerate(self.gpus):
            if not gpu.uuid:
                gpu.uuid = f"GPU-{i:08d}-1111-2222-3333-444455556666"
        self.init_error = init_error
        self.driver_version = driver_version
        self.nvml_version = nvml_version
        self.cuda_driver_version = cuda_driver_version
        self.missing_functions = set(missing_functions)
        #: Calls per pynvml function name (for tests that count NVML traffic).
        self.calls: dict[str, int] = {}
        self.refcount = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self._lock = threading.Lock()
        # Constants and exception classes, as attributes of the module like the real one.
        for key, value in globals().items():
            if key.startswith(("NVML_", "NVMLError", "nvmlClocks", "nvmlTemperature_")):
                setattr(self, key, value)

    def __getattribute__(self, name: str) -> object:
        # An nvidia-ml-py version without this function: the attribute does not exist.
        if name.startswith("nvml") and name in object.__getattribute__(self, "_absent"):
            raise AttributeError(f"module 'pynvml' has no attribute {name!r}")
        return super().__getattribute__(name)

    # -- helpers ----------------------------------------------------------------------------------
    def _check_init(self) -> None:
        if self.refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: object, function: str | None = None) -> FakeGpu:
        self._check_init()
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.index]
        if function is not None:
            self.calls[function] = self.calls.get(function, 0) + 1
            if function in self.missing_functions:
                raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
            if function in gpu.unsupported:
                raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu

    # -- the pynvml API ---------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        with self._lock:
            self.refcount += 1

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1
        self._check_init()
        with self._lock:
            self.refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check_init()
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._check_init()
        return self.nvml_version

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _Handle | _MigHandle:
        self._check_init()
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return _Handle(i)
            if uuid in gpu.mig_uuids:
                return _MigHandle(i, uuid)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, migDevice: object) -> _Handle:
        self._check_init()
        if not isinstance(migDevice, _MigHandle):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(migDevice.parent)

    def nvmlDeviceGetName(self, handle: object) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: object) -> str:
        return self._gpu(handle).uuid

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
        gpu = self._gpu(handle)
        if gpu.energy_mj is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return int(gpu.energy_mj)

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        gpu = self._gpu(handle)
        gpu.power_calls += 1
        value = gpu.power_mw() if callable(gpu.power_mw) else gpu.power_mw
        return int(value)

    def nvmlDeviceGetMigMode(self, device: object) -> list[int]:
        gpu = self._gpu(device)
        if gpu.mig is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [gpu.mig, gpu.mig]

    # -- telemetry and static queries -------------------------------------------------------------
    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check_init()
        if "nvmlSystemGetCudaDriverVersion" in self.missing_functions:
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        return self.cuda_driver_version

    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTemperature")
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temp_c

    def nvmlDeviceGetTemperatureV(
        self, handle: object, sensor: int, version: int = nvmlTemperature_v1
    ) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTemperatureV")
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temp_c

    def nvmlDeviceGetClockInfo(self, handle: object, type: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetClockInfo")
        return {NVML_CLOCK_SM: gpu.sm_clock_mhz, NVML_CLOCK_MEM: gpu.mem_clock_mhz}[type]

    def nvmlDeviceGetMaxClockInfo(self, handle: object, type: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetMaxClockInfo")
        return {NVML_CLOCK_SM: gpu.max_sm_clock_mhz, NVML_CLOCK_MEM: gpu.max_mem_clock_mhz}[type]

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> _Struct:
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        return _Struct(gpu=gpu.util_gpu, memory=gpu.util_mem)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: object) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons").clock_event_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: object) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").clock_event_reasons

    def nvmlDeviceGetPowerManagementLimit(self, handle: object) -> int:
        return self._gpu(handle, "nvmlDeviceGetPowerManagementLimit").power_limit_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: object) -> int:
        return self._gpu(handle, "nvmlDeviceGetPowerManagementDefaultLimit").default_power_limit_mw

    def nvmlDeviceGetPersistenceMode(self, handle: object) -> int:
        return self._gpu(handle, "nvmlDeviceGetPersistenceMode").persistence

    def nvmlDeviceGetEccMode(self, handle: object) -> list[int]:
        gpu = self._gpu(handle, "nvmlDeviceGetEccMode")
        return [gpu.ecc, gpu.ecc]  # [current, pending]

    def nvmlDeviceGetMemoryInfo(self, handle: object, version: int | None = None) -> _Struct:
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        return _Struct(
            total=gpu.memory_total,
            free=gpu.memory_total - gpu.memory_used,
            used=gpu.memory_used,
        )

    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> list[_Struct]:
        gpu = self._gpu(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [
            _Struct(
                pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF
            )
            for pid, used in gpu.processes
        ]
