"""NVIDIA GPUs through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package).

This is the one place lembench initialises NVML. ``nvmlInit`` is reference counted (in the driver
library and in pynvml), so several ``NvidiaGPUs`` may be open at once; each ``close()`` undoes
exactly its own init.

Units: ``nvmlDeviceGetTotalEnergyConsumption`` is mJ since the driver was loaded (Volta and newer;
an unsigned 64-bit count, which does not wrap in practice); ``nvmlDeviceGetPowerUsage`` is mW, a
1 s average on Ampere (except GA100) and newer, instantaneous before (NVML API reference,
docs.nvidia.com/deploy/nvml-api/group__nvmlDeviceQueries.html).
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

# Fallbacks, newest first: a name may be absent in an older nvidia-ml-py (AttributeError) or the
# driver may lack the symbol (NVML_ERROR_FUNCTION_NOT_FOUND).
_TEMPERATURE = ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature")
_CLOCK_EVENTS = (
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
)


def _text(value: Any) -> str:
    # Old pynvml releases return bytes.
    return value.decode() if isinstance(value, bytes) else str(value)


class NvidiaGPU(GPU):
    """One GPU as NVML sees it."""

    vendor = "nvidia"

    def __init__(self, nv: Any, index: int) -> None:
        self._nv = nv
        self._handle = nv.nvmlDeviceGetHandleByIndex(index)
        self._resolved: dict[tuple[str, ...], Callable[..., Any]] = {}
        super().__init__(
            index,
            _text(nv.nvmlDeviceGetUUID(self._handle)),
            _text(nv.nvmlDeviceGetName(self._handle)),
        )

    # -- calling NVML ---------------------------------------------------------------------------
    def _is(self, exc: BaseException, code_name: str) -> bool:
        return getattr(exc, "value", None) == getattr(self._nv, code_name, object())

    def _q(self, get: Callable[[], T], what: str) -> T:
        """``get()`` with NVML's errors mapped onto the device layer's."""
        try:
            return get()
        except self._nv.NVMLError as exc:
            if self._is(exc, "NVML_ERROR_NOT_SUPPORTED") or self._is(
                exc, "NVML_ERROR_FUNCTION_NOT_FOUND"
            ):
                raise GPUNotSupported(f"GPU {self.index}: {what}: {exc}") from exc
            raise GPUError(f"GPU {self.index}: {what}: {exc}") from exc
        except AttributeError as exc:  # this nvidia-ml-py has no such function
            raise GPUNotSupported(f"GPU {self.index}: {what}: {exc}") from exc

    def _call(self, names: tuple[str, ...], *args: Any) -> Any:
        """Call the first of ``names`` that this binding and driver have (remembered)."""
        fn = self._resolved.get(names)
        if fn is not None:
            return fn(*args)
        last: BaseException | None = None
        for name in names:
            fn = getattr(self._nv, name, None)
            if fn is None:
                continue
            try:
                value = fn(*args)
            except self._nv.NVMLError as exc:
                if self._is(exc, "NVML_ERROR_FUNCTION_NOT_FOUND") or (
                    self._is(exc, "NVML_ERROR_NOT_SUPPORTED") and name != names[-1]
                ):
                    last = exc
                    continue
                raise
            self._resolved[names] = fn
            return value
        if last is not None:
            raise last
        raise AttributeError(f"pynvml has none of {', '.join(names)}")

    # -- the GPU interface ----------------------------------------------------------------------
    def energy_counter(self) -> EnergyCounter:
        """``nvmlDeviceGetTotalEnergyConsumption`` (mJ; 64-bit, no wrap in practice)."""
        mj = self._q(lambda: self._nv.nvmlDeviceGetTotalEnergyConsumption(self._handle), "energy")
        return EnergyCounter(int(mj), 1e-3, None)

    def power_mw(self) -> int:
        return int(self._q(lambda: self._nv.nvmlDeviceGetPowerUsage(self._handle), "power"))

    def power_limit_mw(self) -> int:
        return int(
            self._q(lambda: self._nv.nvmlDeviceGetPowerManagementLimit(self._handle), "limit")
        )

    def default_power_limit_mw(self) -> int:
        nv = self._nv
        return int(
            self._q(lambda: nv.nvmlDeviceGetPowerManagementDefaultLimit(self._handle), "limit")
        )

    def temperature_c(self) -> float:
        nv = self._nv
        return self._q(
            lambda: self._call(_TEMPERATURE, self._handle, nv.NVML_TEMPERATURE_GPU), "temperature"
        )

    def clocks_mhz(self) -> tuple[int | None, int | None]:
        nv, h = self._nv, self._handle
        return (
            self._q(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM), "SM clock"),
            self._q(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM), "memory clock"),
        )

    def max_clocks_mhz(self) -> tuple[int | None, int | None]:
        nv, h = self._nv, self._handle
        return (
            self._q(lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM), "max SM clock"),
            self._q(lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM), "max mem clock"),
        )

    def utilization_pct(self) -> tuple[float | None, float | None]:
        util = self._q(lambda: self._nv.nvmlDeviceGetUtilizationRates(self._handle), "util")
        return util.gpu, util.memory

    def clock_event_mask(self) -> int:
        return int(self._q(lambda: self._call(_CLOCK_EVENTS, self._handle), "clock events"))

    def processes(self) -> list[GPUProcess]:
        procs = self._q(
            lambda: self._nv.nvmlDeviceGetComputeRunningProcesses(self._handle), "processes"
        )
        out = []
        for p in procs:
            used = getattr(p, "usedGpuMemory", None)
            out.append(GPUProcess(int(p.pid), None if used is None else int(used)))
        return out

    def mig_enabled(self) -> bool | None:
        nv = self._nv
        try:
            return nv.nvmlDeviceGetMigMode(self._handle)[0] == nv.NVML_DEVICE_MIG_ENABLE
        except (nv.NVMLError, AttributeError):
            return None  # not a MIG-capable GPU

    def persistence_mode(self) -> bool | None:
        nv = self._nv
        with contextlib.suppress(nv.NVMLError, AttributeError):
            return nv.nvmlDeviceGetPersistenceMode(self._handle) == nv.NVML_FEATURE_ENABLED
        return None

    def ecc_enabled(self) -> bool | None:
        nv = self._nv
        with contextlib.suppress(nv.NVMLError, AttributeError):
            return nv.nvmlDeviceGetEccMode(self._handle)[0] == nv.NVML_FEATURE_ENABLED
        return None

    def memory_total_bytes(self) -> int | None:
        nv = self._nv
        with contextlib.suppress(nv.NVMLError, AttributeError):
            return int(nv.nvmlDeviceGetMemoryInfo(self._handle).total)
        return None


class NvidiaGPUs(GPUs):
    """Every GPU NVML sees; ``NvidiaGPUs()`` initialises NVML (GPUUnavailable when it cannot)."""

    vendor = "nvidia"
    # NVIDIA_VISIBLE_DEVICES is the container runtime's (which host GPUs are mounted); inside
    # the container CUDA_VISIBLE_DEVICES then narrows what the process uses.
    visible_env = (("NVIDIA_VISIBLE_DEVICES",), ("CUDA_VISIBLE_DEVICES",))

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise GPUUnavailable("nvidia-ml-py is not installed (import pynvml failed)") from exc
        self._nv = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise GPUUnavailable(f"NVML init failed: {exc}") from exc
        try:
            count = pynvml.nvmlDeviceGetCount()
            if count == 0:
                raise GPUUnavailable("NVML sees no GPU (device count 0)")
            gpus = [NvidiaGPU(pynvml, i) for i in range(count)]
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
        except BaseException as exc:
            self._shutdown()
            if isinstance(exc, pynvml.NVMLError):
                raise GPUUnavailable(f"NVML query failed: {exc}") from exc
            raise
        super().__init__(gpus, driver)

    def mig_parent_uuid(self, mig_uuid: str) -> str | None:
        nv = self._nv
        try:
            mig = nv.nvmlDeviceGetHandleByUUID(mig_uuid)
            return _text(nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)))
        except (nv.NVMLError, AttributeError):
            return None

    def library_versions(self) -> dict[str, str | None]:
        """Driver, NVML and CUDA driver versions ("12.4"), None where NVML cannot say."""
        nv = self._nv
        out = super().library_versions()
        out["nvml"] = None
        out["cuda_driver"] = None
        with contextlib.suppress(nv.NVMLError, AttributeError):
            out["nvml"] = _text(nv.nvmlSystemGetNVMLVersion())
        with contextlib.suppress(nv.NVMLError, AttributeError):
            out["cuda_driver"] = cuda_version_string(nv.nvmlSystemGetCudaDriverVersion())
        return out

    def _shutdown(self) -> None:
        with contextlib.suppress(self._nv.NVMLError):  # already shut down or driver gone
            self._nv.nvmlShutdown()


def cuda_version_string(version: int | None) -> str | None:
    """12040 -> "12.4" (``nvmlSystemGetCudaDriverVersion`` encodes 1000 x major + 10 x minor)."""
    if version is None:
        return None
    return f"{version // 1000}.{version % 1000 // 10}"
