"""GPU energy through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package).

Per device, the meter prefers the driver's cumulative energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, millijoules, Volta and newer): the window's energy is the
difference of two readings, so sampling cannot miss a spike. Older GPUs have no counter; for them a
background thread polls ``nvmlDeviceGetPowerUsage`` (milliwatts) at 10 Hz and integrates it with the
trapezoid rule on ``time.perf_counter`` timestamps, with one synchronous sample at each edge of the
window so the integral spans exactly start() .. stop().

Which GPUs: those the workload can see. ``CUDA_VISIBLE_DEVICES`` is honoured when it lists integer
indices, ``GPU-`` UUIDs (or unique prefixes, as CUDA allows) or ``MIG-`` UUIDs (mapped to their
physical GPU); otherwise every GPU that NVML sees is measured. With MIG enabled the figure is the
whole physical GPU's energy: NVML has no per-instance energy.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.meters.base import EnergyComponent, Meter, MeterUnavailable

#: Polling period for GPUs without an energy counter (10 Hz).
POLL_INTERVAL_S = 0.1
#: Assumed update period of the driver's energy counter (not documented by NVIDIA; ~100 ms is
#: what is commonly observed on Volta..Hopper). Used for the window-too-short rule.
COUNTER_UPDATE_PERIOD_S = 0.1

COUNTER = "nvml_counter"
POLL = "nvml_power_poll"


@dataclass
class _Device:
    index: int
    handle: Any
    name: str
    uuid: str
    method: str
    mig_enabled: bool | None
    start_mj: int = 0

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "uuid": self.uuid, "method": self.method}


class _PowerPoller:
    """Samples power of several devices in one daemon thread and integrates it (trapezoid).

    The integral is kept up to date at each sample, so the energy so far can be read from another
    thread (``energy_now``, for the power timeline) while the thread polls. Each sample is taken
    and integrated under one lock, so samples stay in time order whoever takes them.
    """

    def __init__(
        self, readers: list[Callable[[], int]], interval_s: float, clock: Callable[[], float]
    ) -> None:
        self._readers = readers
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        #: (timestamp_s, [power_mW per device]), in time order.
        self.samples: list[tuple[float, list[int]]] = []
        self._energy_j = [0.0] * len(readers)
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        with self._lock:
            t = self._clock()
            values = [read() for read in self._readers]
            if self.samples:
                t0, p0 = self.samples[-1]
                dt = t - t0
                for i, (a, b) in enumerate(zip(p0, values, strict=True)):
                    self._energy_j[i] += (a + b) / 2.0 / 1000.0 * dt  # mW -> W, x s -> J
            self.samples.append((t, values))

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._sample()
            except BaseException as exc:  # re-raised in stop(): a failed read is never lost
                self._error = exc
                return

    def start(self) -> None:
        self._sample()  # the window's first edge, taken synchronously
        self._thread = threading.Thread(target=self._run, name="lembench-nvml-poll", daemon=True)
        self._thread.start()

    def energy_now(self) -> list[float]:
        """Joules per device from the first sample to a sample taken now (thread-safe)."""
        self._sample()
        with self._lock:
            return list(self._energy_j)

    def cancel(self) -> None:
        """Stop the thread without a result (meter closed mid-window)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> list[float]:
        """Stop sampling; return joules per device over [first sample, last sample]."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"NVML power polling failed: {self._error}") from self._error
        self._sample()  # the window's last edge
        with self._lock:
            return list(self._energy_j)


def visible_gpu_indices(nv: Any, notes: list[str]) -> list[int]:
    """NVML indices of the GPUs the workload sees, in ``CUDA_VISIBLE_DEVICES`` order.

    ``nv`` is an initialised ``pynvml`` module. Remarks (entries ignored, ordering caveats) are
    appended to ``notes``. Raises MeterUnavailable when no GPU is selected. Shared by NvmlMeter and
    harness.hardware.telemetry so both always look at the same devices.
    """
    count = nv.nvmlDeviceGetCount()
    if count == 0:
        raise MeterUnavailable("NVML sees no GPU (device count 0)")
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(count))
    tokens = [t.strip() for t in raw.split(",")]
    if not any(tokens):
        raise MeterUnavailable("CUDA_VISIBLE_DEVICES is set but empty: no GPU is visible")
    if not all(t.lstrip("-").isdigit() or t.startswith(("GPU-", "MIG-")) for t in tokens):
        notes.append(f"CUDA_VISIBLE_DEVICES={raw!r} not understood: measuring all GPUs")
        return list(range(count))
    uuids = [str(nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
    selected: list[int] = []
    for tok in tokens:
        index = _resolve(nv, tok, count, uuids)
        if index is None:
            # CUDA ignores the first invalid entry and everything after it.
            notes.append(
                f"CUDA_VISIBLE_DEVICES entry {tok!r} matches no GPU; it and "
                "later entries are ignored, as CUDA does"
            )
            break
        if index not in selected:
            selected.append(index)
    if not selected:
        raise MeterUnavailable(f"CUDA_VISIBLE_DEVICES={raw!r} selects no GPU that NVML sees")
    if (
        count > 1
        and any(t.isdigit() for t in tokens)
        and (os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID")
    ):
        # NVML numbers GPUs in PCI bus order, CUDA by default fastest first.
        notes.append(
            "CUDA_VISIBLE_DEVICES indices taken in NVML (PCI bus) order; "
            "set CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA agrees"
        )
    return selected


def _resolve(nv: Any, tok: str, count: int, uuids: list[str]) -> int | None:
    if tok.lstrip("-").isdigit():
        index = int(tok)
        return index if 0 <= index < count else None
    if tok.startswith("MIG-"):
        try:
            mig = nv.nvmlDeviceGetHandleByUUID(tok)
            parent = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
            tok = str(nv.nvmlDeviceGetUUID(parent))
        except (nv.NVMLError, AttributeError):
            return None
    matches = [i for i, u in enumerate(uuids) if u == tok] or [
        i for i, u in enumerate(uuids) if u.startswith(tok)
    ]
    return matches[0] if len(matches) == 1 else None


class NvmlMeter(Meter):
    """GPU energy of the GPUs visible to the workload (one ``gpu`` component, per-device values)."""

    name = "nvml"
    domains = ("gpu",)

    def __init__(
        self,
        measurement: dict[str, Any],
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Initialise NVML and pick the devices; MeterUnavailable when NVML or GPUs are missing."""
        super().__init__(measurement)
        try:
            import pynvml
        except ImportError as exc:
            raise MeterUnavailable("nvidia-ml-py is not installed (import pynvml failed)") from exc
        self._nv = pynvml
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._notes: list[str] = []
        self._poller: _PowerPoller | None = None
        self._running = False
        self._closed = False
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise MeterUnavailable(f"NVML init failed: {exc}") from exc
        try:
            self._devices = [self._probe(i) for i in visible_gpu_indices(pynvml, self._notes)]
            self._driver_version = str(pynvml.nvmlSystemGetDriverVersion())
            try:
                self._nvml_version: str | None = str(pynvml.nvmlSystemGetNVMLVersion())
            except pynvml.NVMLError:
                self._nvml_version = None
        except BaseException as exc:
            self._shutdown()
            if isinstance(exc, pynvml.NVMLError):
                raise MeterUnavailable(f"NVML query failed: {exc}") from exc
            raise
        methods = {d.method for d in self._devices}
        self.update_period_s = max(
            (COUNTER_UPDATE_PERIOD_S if m == COUNTER else poll_interval_s) for m in methods
        )
        for d in self._devices:
            if d.mig_enabled:
                self._notes.append(
                    f"MIG is enabled on GPU {d.index}: energy is of the whole physical GPU "
                    "(MIG instances have no separate energy counters)"
                )

    def _probe(self, index: int) -> _Device:
        nv = self._nv
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        name = str(nv.nvmlDeviceGetName(handle))
        uuid = str(nv.nvmlDeviceGetUUID(handle))
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(handle)
            method = COUNTER
        except nv.NVMLError:
            try:
                nv.nvmlDeviceGetPowerUsage(handle)
            except nv.NVMLError as exc:
                raise MeterUnavailable(
                    f"GPU {index} ({name}) reports neither an energy counter nor power: {exc}"
                ) from exc
            method = POLL
        try:
            mig_enabled: bool | None = (
                nv.nvmlDeviceGetMigMode(handle)[0] == nv.NVML_DEVICE_MIG_ENABLE
            )
        except nv.NVMLError:
            mig_enabled = None  # not a MIG-capable GPU
        return _Device(index, handle, name, uuid, method, mig_enabled)

    # -- measuring ----------------------------------------------------------------------------
    def start(self) -> None:
        """Read the energy counters and start the power poller for GPUs without one."""
        if self._running:
            raise RuntimeError("nvml meter already started")
        if self._closed:
            raise RuntimeError("nvml meter is closed")
        nv = self._nv
        polled = [d for d in self._devices if d.method == POLL]
        self._poller = None
        if polled:
            self._poller = _PowerPoller(
                [lambda h=d.handle: nv.nvmlDeviceGetPowerUsage(h) for d in polled],
                self._poll_interval_s,
                self._clock,
            )
        self._t0 = self._clock()
        for d in self._devices:
            if d.method == COUNTER:
                d.start_mj = int(nv.nvmlDeviceGetTotalEnergyConsumption(d.handle))
        if self._poller is not None:
            self._poller.start()
        self._running = True

    def read_cumulative(self) -> dict[str, float] | None:
        """GPU energy (J, all measured GPUs) since ``start()``: counter now - counter at start, plus
        the power integral so far (with a fresh power sample) for GPUs without a counter.

        Thread-safe (NVML is); None when no window is open. Raises RuntimeError when a counter
        went backwards, NVMLError when a read fails.
        """
        if not self._running:
            return None
        nv = self._nv
        total = 0.0
        for d in self._devices:
            if d.method != COUNTER:
                continue
            now = int(nv.nvmlDeviceGetTotalEnergyConsumption(d.handle))
            if now < d.start_mj:
                raise RuntimeError(f"NVML energy counter of GPU {d.index} went backwards")
            total += (now - d.start_mj) / 1000.0
        poller = self._poller
        if poller is not None:
            total += sum(poller.energy_now())
        return {"gpu": total}

    def stop(self) -> list[EnergyComponent]:
        """Read the counters again, stop the poller; return one ``gpu`` component."""
        if not self._running:
            raise RuntimeError("nvml meter stopped without start()")
        self._running = False
        nv = self._nv
        energy: dict[int, float] = {}
        for d in self._devices:
            if d.method != COUNTER:
                continue
            try:
                end = int(nv.nvmlDeviceGetTotalEnergyConsumption(d.handle))
            except nv.NVMLError as exc:
                raise RuntimeError(f"NVML energy read failed on GPU {d.index}: {exc}") from exc
            if end < d.start_mj:
                raise RuntimeError(
                    f"NVML energy counter of GPU {d.index} went backwards "
                    f"({d.start_mj} -> {end} mJ; driver reset?)"
                )
            energy[d.index] = (end - d.start_mj) / 1000.0
        t1 = self._clock()
        details: dict[str, Any] = {}
        if self._poller is not None:
            polled = [d for d in self._devices if d.method == POLL]
            for d, joules in zip(polled, self._poller.stop(), strict=True):
                energy[d.index] = joules
            details["poll_interval_s"] = self._poll_interval_s
            details["poll_samples"] = len(self._poller.samples)
        methods = {str(d.index): d.method for d in self._devices}
        devices = [
            {"id": str(d.index), **d.info(), "energy_j": energy[d.index]} for d in self._devices
        ]
        details.update(duration_s=t1 - self._t0, method_per_device=methods)
        if self._notes:
            details["notes"] = list(self._notes)
        return [
            EnergyComponent(
                meter=self.name,
                # One polled GPU makes the whole figure a polled one (less exact than a counter).
                method=POLL if POLL in methods.values() else COUNTER,
                domain="gpu",
                is_estimate=False,
                energy_j=sum(energy.values()),
                devices=devices,
                details=details,
            )
        ]

    def describe(self) -> dict[str, Any]:
        """Driver/NVML versions and, per measured GPU, index, name, UUID, method and MIG mode."""
        out = super().describe()
        out.update(
            driver_version=self._driver_version,
            nvml_version=self._nvml_version,
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            devices=[
                {"index": d.index, **d.info(), "mig_enabled": d.mig_enabled} for d in self._devices
            ],
        )
        if self._notes:
            out["notes"] = list(self._notes)
        return out

    def close(self) -> None:
        """Stop a running poller and shut NVML down (once)."""
        if self._closed:
            return
        if self._running and self._poller is not None:
            self._poller.cancel()
        self._running = False
        self._closed = True
        self._shutdown()

    def _shutdown(self) -> None:
        # Already shut down or driver gone: nothing left to release.
        with contextlib.suppress(self._nv.NVMLError):
            self._nv.nvmlShutdown()
