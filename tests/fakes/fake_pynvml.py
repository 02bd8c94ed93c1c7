"""A fake of the ``pynvml`` module (from the ``nvidia-ml-py`` package) for unit tests.

It mirrors the names, signatures, return types and exceptions of the real module (nvidia-ml-py 13.x)
for the subset lembench uses, so code under test cannot tell the difference:

- every call before ``nvmlInit`` raises ``NVMLError_Uninitialized``; nvmlShutdown is refcounted;
- ``NVMLError(code)`` returns the per-code subclass (``NVMLError_NotSupported``...) with ``.value``;
- strings come back as ``str`` (the real module decodes bytes), handles are opaque objects.

Use it by putting an instance into ``sys.modules``::

    fake = FakePynvml([FakeGpu(energy_mj=0), FakeGpu(energy_mj=None, power_mw=150_000)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)

Tests drive the devices through ``fake.gpus[i]`` (advance ``energy_mj``, change ``power_mw``).
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
    not supported. ``power_mw`` may be a callable, evaluated at each ``nvmlDeviceGetPowerUsage``."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""
    energy_mj: int | None = 0
    power_mw: int | Callable[[], int] = 100_000
    mig: int | None = NVML_DEVICE_MIG_DISABLE
    mig_uuids: list[str] = field(default_factory=list)
    power_calls: int = 0


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass(frozen=True)
class _MigHandle:
    parent: int
    uuid: str


class FakePynvml(types.ModuleType):
    """A module object standing in for ``pynvml``, with its own simulated devices."""

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        init_error: int | None = None,
        driver_version: str = "550.54.15",
        nvml_version: str = "12.550.54.15",
    ) -> None:
        super().__init__("pynvml")
        self.gpus = list(gpus or [])
        for i, gpu in enumerate(self.gpus):
            if not gpu.uuid:
                gpu.uuid = f"GPU-{i:08d}-1111-2222-3333-444455556666"
        self.init_error = init_error
        self.driver_version = driver_version
        self.nvml_version = nvml_version
        self.refcount = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self._lock = threading.Lock()
        # Constants and exception classes, as attributes of the module like the real one.
        for key, value in globals().items():
            if key.startswith(("NVML_", "NVMLError")):
                setattr(self, key, value)

    # -- helpers ----------------------------------------------------------------------------------
    def _check_init(self) -> None:
        if self.refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: object) -> FakeGpu:
        self._check_init()
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[handle.index]

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
