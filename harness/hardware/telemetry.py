"""GPU telemetry through NVML, for the power timeline, the warnings and the environment snapshot.

``Telemetry.open()`` initialises NVML once (``nvmlInit`` is reference counted in the driver library
and in pynvml, so this coexists with ``NvmlMeter``'s own init; each ``close()`` undoes exactly one
init) and looks at the same GPUs as ``NvmlMeter`` (``CUDA_VISIBLE_DEVICES``, shared selection code
in ``harness.meters.nvml``). It returns None where there is no NVML or no visible GPU.

- ``read()``: one entry per GPU for a timeline sample: power, raw energy counter, temperature,
  SM/memory clocks, utilisation, clock event ("throttle") reasons and the power limit. A field the
  GPU does not support (NVML_ERROR_NOT_SUPPORTED) is None, and is not asked again. Any other NVML
  error is raised: the timeline records it. ``power_w`` is ``nvmlDeviceGetPowerUsage``, which NVML
  documents as a 1 s average on Ampere (except GA100) and newer GPUs, instantaneous before.
- ``processes()``: the compute processes on each GPU, for the "other processes" warning.
- ``static()``: what does not change during a run (name, UUID, driver, limits, modes, clocks).

Thread safety: NVML is thread-safe; ``read()`` may run in the timeline thread while the main thread
calls ``processes()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from harness.meters.base import MeterUnavailable
from harness.meters.nvml import visible_gpu_indices

log = logging.getLogger("harness")

#: Clock event reason bits (``nvmlClocksEventReason*``), named for warnings.
CLOCK_EVENT_REASONS = {
    0x001: "gpu_idle",
    0x002: "applications_clocks_setting",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown",
    0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
#: Reasons that do not mean the GPU is being held back (it is idle, or clocks were set on purpose).
BENIGN_CLOCK_EVENTS = 0x001 | 0x002

# Fallbacks, newest first: a name may be absent in an older nvidia-ml-py (AttributeError) or the
# driver may lack the symbol (NVML_ERROR_FUNCTION_NOT_FOUND).
_TEMPERATURE = ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature")
_CLOCK_EVENTS = (
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
)


def throttle_reasons(mask: int | None) -> list[str]:
    """Names of the clock event bits in ``mask`` that hold the GPU back (idle and application
    clock settings left out; unknown bits as hex)."""
    if not mask:
        return []
    out = []
    for bit in range(64):
        flag = 1 << bit
        if mask & flag and not flag & BENIGN_CLOCK_EVENTS:
            out.append(CLOCK_EVENT_REASONS.get(flag, f"0x{flag:x}"))
    return out


def cuda_version_string(version: int | None) -> str | None:
    """12040 -> "12.4" (``nvmlSystemGetCudaDriverVersion`` encodes 1000 x major + 10 x minor)."""
    if version is None:
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


class Telemetry:
    """NVML telemetry of the GPUs the workload sees. Build with ``Telemetry.open()``."""

    def __init__(self, nv: Any, indices: list[int], notes: list[str]) -> None:
        """Use ``open()``; this expects an initialised ``pynvml`` module (one init owned here)."""
        self._nv = nv
        self.indices = indices
        self.notes = notes
        self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in indices]
        self._unsupported: set[tuple[int, str]] = set()
        self._resolved: dict[tuple[str, ...], Callable[..., Any]] = {}
        self._closed = False

    @classmethod
    def open(cls) -> Telemetry | None:
        """Initialise NVML and select the visible GPUs; None (logged) when there are none."""
        try:
            import pynvml
        except ImportError:
            log.info("no GPU telemetry: nvidia-ml-py is not installed")
            return None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            log.info("no GPU telemetry: NVML init failed: %s", exc)
            return None
        try:
            notes: list[str] = []
            return cls(pynvml, visible_gpu_indices(pynvml, notes), notes)
        except (MeterUnavailable, pynvml.NVMLError) as exc:
            log.info("no GPU telemetry: %s", exc)
            cls._shutdown(pynvml)
            return None
        except BaseException:
            cls._shutdown(pynvml)
            raise

    # -- calling NVML -------------------------------------------------------------------------
    def _is(self, exc: BaseException, code_name: str) -> bool:
        return getattr(exc, "value", None) == getattr(self._nv, code_name, object())

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

    def _field(self, pos: int, key: str, get: Callable[[], Any]) -> Any:
        """``get()``, or None when the GPU says NOT_SUPPORTED (then never asked again)."""
        if (pos, key) in self._unsupported:
            return None
        try:
            return get()
        except self._nv.NVMLError as exc:
            if self._is(exc, "NVML_ERROR_NOT_SUPPORTED") or self._is(
                exc, "NVML_ERROR_FUNCTION_NOT_FOUND"
            ):
                self._unsupported.add((pos, key))
                return None
            raise
        except AttributeError:  # the binding has no such function
            self._unsupported.add((pos, key))
            return None

    # -- queries ------------------------------------------------------------------------------
    def read(self) -> list[dict[str, Any]]:
        """One timeline entry per GPU (see the module docstring); unsupported fields are None."""
        nv = self._nv
        out = []
        for pos, (index, h) in enumerate(zip(self.indices, self._handles, strict=True)):
            f = self._field
            power = f(pos, "power", lambda h=h: nv.nvmlDeviceGetPowerUsage(h))
            limit = f(pos, "limit", lambda h=h: nv.nvmlDeviceGetPowerManagementLimit(h))
            util = f(pos, "util", lambda h=h: nv.nvmlDeviceGetUtilizationRates(h))
            out.append(
                {
                    "id": str(index),
                    "power_w": None if power is None else power / 1000.0,
                    "energy_mj": f(
                        pos, "energy", lambda h=h: int(nv.nvmlDeviceGetTotalEnergyConsumption(h))
                    ),
                    "temp_c": f(
                        pos,
                        "temp",
                        lambda h=h: self._call(_TEMPERATURE, h, nv.NVML_TEMPERATURE_GPU),
                    ),
                    "sm_clock_mhz": f(
                        pos, "sm_clock", lambda h=h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
                    ),
                    "mem_clock_mhz": f(
                        pos,
                        "mem_clock",
                        lambda h=h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
                    ),
                    "util_gpu_pct": None if util is None else util.gpu,
                    "util_mem_pct": None if util is None else util.memory,
                    "throttle_reasons": f(
                        pos, "clock_events", lambda h=h: self._call(_CLOCK_EVENTS, h)
                    ),
                    "power_limit_w": None if limit is None else limit / 1000.0,
                }
            )
        return out

    def processes(self) -> list[dict[str, Any]]:
        """Compute processes on each GPU: ``{"id", "pid", "used_memory_bytes", "ours"}``.

        ``ours``: the pid is this process or one of its descendants (engines that run the model in
        worker processes). Inside a container with its own PID namespace NVML reports host pids,
        which never match ours: treat "other processes" there as unknown, not as a finding.
        A GPU that cannot list processes (NOT_SUPPORTED, NO_PERMISSION) contributes nothing.
        """
        mine = {os.getpid()}
        with contextlib.suppress(Exception):  # psutil is a harness dependency; best effort
            import psutil

            mine |= {c.pid for c in psutil.Process().children(recursive=True)}
        out = []
        for index, h in zip(self.indices, self._handles, strict=True):
            try:
                procs = self._nv.nvmlDeviceGetComputeRunningProcesses(h)
            except self._nv.NVMLError as exc:
                log.debug("GPU %s: cannot list compute processes: %s", index, exc)
                continue
            for p in procs:
                used = getattr(p, "usedGpuMemory", None)
                out.append(
                    {
                        "id": str(index),
                        "pid": int(p.pid),
                        "used_memory_bytes": None if used is None else int(used),
                        "ours": int(p.pid) in mine,
                    }
                )
        return out

    def static(self) -> list[dict[str, Any]]:
        """Per GPU, what does not change during a run: ``id``, ``index``, ``name``, ``uuid``,
        ``driver``, ``cuda_driver_version`` ("12.4"), ``power_limit_w``, ``default_power_limit_w``,
        ``persistence_mode``/``mig_mode``/``ecc_mode`` (bool), ``max_sm_clock_mhz``,
        ``max_mem_clock_mhz``, ``memory_total_bytes``; None where NVML cannot say."""
        nv = self._nv

        def opt(get: Callable[[], Any]) -> Any:
            try:
                return get()
            except (nv.NVMLError, AttributeError):
                return None

        driver = opt(lambda: str(nv.nvmlSystemGetDriverVersion()))
        cuda = cuda_version_string(opt(nv.nvmlSystemGetCudaDriverVersion))
        enabled = nv.NVML_FEATURE_ENABLED

        def watts(mw: int | None) -> float | None:
            return None if mw is None else mw / 1000.0

        def flag(value: Any) -> bool | None:
            return None if value is None else value == enabled

        out = []
        for index, h in zip(self.indices, self._handles, strict=True):
            mig = opt(lambda h=h: nv.nvmlDeviceGetMigMode(h)[0])
            ecc = opt(lambda h=h: nv.nvmlDeviceGetEccMode(h)[0])
            mem = opt(lambda h=h: nv.nvmlDeviceGetMemoryInfo(h))
            out.append(
                {
                    "id": str(index),
                    "index": index,
                    "name": opt(lambda h=h: str(nv.nvmlDeviceGetName(h))),
                    "uuid": opt(lambda h=h: str(nv.nvmlDeviceGetUUID(h))),
                    "driver": driver,
                    "cuda_driver_version": cuda,
                    "power_limit_w": watts(
                        opt(lambda h=h: nv.nvmlDeviceGetPowerManagementLimit(h))
                    ),
                    "default_power_limit_w": watts(
                        opt(lambda h=h: nv.nvmlDeviceGetPowerManagementDefaultLimit(h))
                    ),
                    "persistence_mode": flag(opt(lambda h=h: nv.nvmlDeviceGetPersistenceMode(h))),
                    "mig_mode": None if mig is None else mig == nv.NVML_DEVICE_MIG_ENABLE,
                    "ecc_mode": flag(ecc),
                    "max_sm_clock_mhz": opt(
                        lambda h=h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM)
                    ),
                    "max_mem_clock_mhz": opt(
                        lambda h=h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM)
                    ),
                    "memory_total_bytes": None if mem is None else int(mem.total),
                }
            )
        return out

    def close(self) -> None:
        """Undo this object's NVML init (once)."""
        if not self._closed:
            self._closed = True
            self._shutdown(self._nv)

    @staticmethod
    def _shutdown(nv: Any) -> None:
        with contextlib.suppress(nv.NVMLError):  # already shut down or driver gone
            nv.nvmlShutdown()
