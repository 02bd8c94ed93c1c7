"""GPU telemetry through the device layer, for the power timeline, the warnings and the
environment snapshot.

``Telemetry.open(config)`` opens the GPU library (``harness.hardware.gpu.get_gpus``: NVML, else
amdsmi) and looks at the same GPUs as the GPU meter (``harness.hardware.gpu.scope``: visibility
variables, then the experiment's device list). It returns None where there is no GPU library or no
visible GPU.

- ``read()``: one entry per GPU for a timeline sample: power, raw energy counter, temperature,
  SM/memory clocks, utilisation, clock event ("throttle") reasons and the power limit. A field the
  GPU does not support (``GPUNotSupported``) is None, and is not asked again. Any other error is
  raised (``GPUError``): the timeline records it. ``power_w`` is the driver's reading (NVML: a 1 s
  average on Ampere, except GA100, and newer GPUs; instantaneous before).
- ``processes()``: the compute processes on each measured GPU, for the "other processes" warning.
- ``outside_load()``: GPUs the library sees but the experiment does not use that draw load now.
- ``static()``: what does not change during a run (name, UUID, driver, limits, modes, clocks).

Thread safety: NVML and amdsmi are thread-safe; ``read()`` may run in the timeline thread while the
main thread calls ``processes()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from harness.hardware.gpu import GPU, GPUError, GPUNotSupported, GPUs, get_gpus, throttle_reasons
from harness.hardware.gpu.nvidia import cuda_version_string
from harness.hardware.gpu.scope import select

__all__ = ["OUTSIDE_LOAD_UTIL_PCT", "Telemetry", "cuda_version_string", "throttle_reasons"]

log = logging.getLogger("harness")

#: A GPU outside the experiment's set busier than this (%) is "drawing load" (warned).
OUTSIDE_LOAD_UTIL_PCT = 10.0


class Telemetry:
    """Telemetry of the experiment's GPUs. Build with ``Telemetry.open()``."""

    def __init__(self, gpus: GPUs, measured: list[GPU], outside: list[GPU], notes: list[str]):
        """Use ``open()``; this takes an open ``GPUs`` (whose library this object closes)."""
        self._gpus = gpus
        self.devices = measured
        self.outside = outside
        self.indices = [g.index for g in measured]
        self.notes = notes
        self._unsupported: set[tuple[int, str]] = set()
        self._closed = False

    @classmethod
    def open(cls, config: dict[str, Any] | None = None) -> Telemetry | None:
        """Open the GPU library and select the experiment's GPUs (``config``: its experiment
        config; None: every visible GPU); None (logged) when there are none."""
        gpus, reasons = get_gpus()
        if gpus is None:
            log.info("no GPU telemetry: %s", "; ".join(f"{k}: {v}" for k, v in reasons.items()))
            return None
        try:
            scope = select(gpus, config)
        except GPUError as exc:
            log.info("no GPU telemetry: %s", exc)
            gpus.close()
            return None
        except BaseException:
            gpus.close()
            raise
        return cls(gpus, scope.measured, scope.outside, scope.notes)

    @property
    def vendor(self) -> str:
        """The GPU library's vendor key ("nvidia", "amd")."""
        return self._gpus.vendor

    def _field(self, pos: int, key: str, get: Callable[[], Any]) -> Any:
        """``get()``, or None when the GPU cannot answer (then never asked again)."""
        if (pos, key) in self._unsupported:
            return None
        try:
            return get()
        except GPUNotSupported:
            self._unsupported.add((pos, key))
            return None

    # -- queries ------------------------------------------------------------------------------
    def read(self) -> list[dict[str, Any]]:
        """One timeline entry per GPU (see the module docstring); unsupported fields are None."""
        out = []
        for pos, g in enumerate(self.devices):
            f = self._field
            power = f(pos, "power", g.power_mw)
            limit = f(pos, "limit", g.power_limit_mw)
            util = f(pos, "util", g.utilization_pct) or (None, None)
            clocks = f(pos, "clocks", g.clocks_mhz) or (None, None)
            counter = f(pos, "energy", g.energy_counter)
            out.append(
                {
                    "id": str(g.index),
                    "power_w": None if power is None else power / 1000.0,
                    # Raw counter in mJ (the timeline's unit), whatever the vendor's resolution.
                    "energy_mj": None
                    if counter is None
                    else round(counter.raw * counter.resolution_j * 1000),
                    "temp_c": f(pos, "temp", g.temperature_c),
                    "sm_clock_mhz": clocks[0],
                    "mem_clock_mhz": clocks[1],
                    "util_gpu_pct": util[0],
                    "util_mem_pct": util[1],
                    "throttle_reasons": f(pos, "clock_events", g.clock_event_mask),
                    "power_limit_w": None if limit is None else limit / 1000.0,
                }
            )
        return out

    def processes(self) -> list[dict[str, Any]]:
        """Compute processes on each measured GPU: ``{"id", "pid", "used_memory_bytes", "ours"}``.

        ``ours``: the pid is this process or one of its descendants (engines that run the model in
        worker processes). Inside a container with its own PID namespace the driver reports host
        pids, which never match ours: treat "other processes" there as unknown, not as a finding.
        A GPU that cannot list processes (not supported, no permission) contributes nothing.
        """
        mine = {os.getpid()}
        with contextlib.suppress(Exception):  # psutil is a harness dependency; best effort
            import psutil

            mine |= {c.pid for c in psutil.Process().children(recursive=True)}
        out = []
        for g in self.devices:
            try:
                procs = g.processes()
            except GPUError as exc:
                log.debug("GPU %s: cannot list compute processes: %s", g.index, exc)
                continue
            out.extend(
                {
                    "id": str(g.index),
                    "pid": p.pid,
                    "used_memory_bytes": p.used_memory_bytes,
                    "ours": p.pid in mine,
                }
                for p in procs
            )
        return out

    def outside_load(self) -> list[dict[str, Any]]:
        """GPUs outside the experiment's set that are busy now (utilisation above
        ``OUTSIDE_LOAD_UTIL_PCT`` or running compute processes): ``{"id", "uuid",
        "util_gpu_pct", "power_w", "processes"}``. A GPU that cannot say contributes nothing."""
        out = []
        for g in self.outside:
            try:
                util = g.utilization_pct()[0]
            except GPUError:
                util = None
            try:
                procs = len(g.processes())
            except GPUError:
                procs = 0
            if (util is None or util <= OUTSIDE_LOAD_UTIL_PCT) and not procs:
                continue
            try:
                power: float | None = g.power_mw() / 1000.0
            except GPUError:
                power = None
            out.append(
                {
                    "id": str(g.index),
                    "uuid": g.uuid,
                    "util_gpu_pct": util,
                    "power_w": power,
                    "processes": procs,
                }
            )
        return out

    def static(self) -> list[dict[str, Any]]:
        """Per GPU, what does not change during a run: ``id``, ``index``, ``name``, ``uuid``,
        ``vendor``, ``driver``, ``cuda_driver_version`` ("12.4"), ``power_limit_w``,
        ``default_power_limit_w``, ``persistence_mode``/``mig_mode``/``ecc_mode`` (bool),
        ``max_sm_clock_mhz``, ``max_mem_clock_mhz``, ``memory_total_bytes``; None where unknown."""

        def opt(get: Callable[[], Any]) -> Any:
            try:
                return get()
            except GPUError:
                return None

        versions = self._gpus.library_versions()

        def watts(mw: int | None) -> float | None:
            return None if mw is None else mw / 1000.0

        out = []
        for g in self.devices:
            max_clocks = opt(g.max_clocks_mhz) or (None, None)
            out.append(
                {
                    "id": str(g.index),
                    "index": g.index,
                    "name": g.name,
                    "uuid": g.uuid,
                    "vendor": g.vendor,
                    "driver": versions.get("driver"),
                    "cuda_driver_version": versions.get("cuda_driver"),
                    "power_limit_w": watts(opt(g.power_limit_mw)),
                    "default_power_limit_w": watts(opt(g.default_power_limit_mw)),
                    "persistence_mode": g.persistence_mode(),
                    "mig_mode": g.mig_enabled(),
                    "ecc_mode": g.ecc_enabled(),
                    "max_sm_clock_mhz": max_clocks[0],
                    "max_mem_clock_mhz": max_clocks[1],
                    "memory_total_bytes": g.memory_total_bytes(),
                }
            )
        return out

    def close(self) -> None:
        """Release the GPU library (once)."""
        if not self._closed:
            self._closed = True
            self._gpus.close()
