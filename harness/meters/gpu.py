"""GPU energy through the device layer (``harness.hardware.gpu``), for any vendor.

Per device, the meter prefers the driver's cumulative energy counter: the window's energy is the
difference of two readings (one wrap-around undone), so sampling cannot miss a spike. A device
without a counter is polled: a background thread reads its power at 10 Hz and integrates it with
the trapezoid rule on ``time.perf_counter`` timestamps, with one synchronous sample at each edge of
the window so the integral spans exactly start() .. stop().

Which GPUs: exactly the experiment's (``harness.hardware.gpu.scope``: the visibility variables,
then the backend's device list); each keeps its raw figures in the component's ``devices``. With
MIG enabled the figure is the whole physical GPU's, and labelled so.

A vendor's meter is a subclass naming its vendor and its two methods (see ``nvml.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.hardware.gpu import (
    GPU,
    EnergyCounter,
    GPUError,
    GPUNotSupported,
    GPUs,
    GPUUnavailable,
    open_vendor,
)
from harness.hardware.gpu.scope import Scope, select
from harness.meters.base import EnergyComponent, Meter, MeterUnavailable

#: Polling period for GPUs without an energy counter (10 Hz).
POLL_INTERVAL_S = 0.1
#: Assumed update period of a driver energy counter (NVIDIA does not document it; ~100 ms is
#: what is commonly observed on Volta..Hopper). Used for the window-too-short rule.
COUNTER_UPDATE_PERIOD_S = 0.1


@dataclass
class _Device:
    gpu: GPU
    method: str
    mig_enabled: bool | None
    start: EnergyCounter | None = None

    def info(self) -> dict[str, Any]:
        return {"name": self.gpu.name, "uuid": self.gpu.uuid, "method": self.method}


class PowerPoller:
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
        self._thread = threading.Thread(target=self._run, name="lembench-gpu-poll", daemon=True)
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
            raise RuntimeError(f"GPU power polling failed: {self._error}") from self._error
        self._sample()  # the window's last edge
        with self._lock:
            return list(self._energy_j)


class GpuMeter(Meter):
    """GPU energy of the experiment's GPUs (one ``gpu`` component with per-device values)."""

    domains = ("gpu",)
    #: ``harness.hardware.gpu.VENDORS`` key of the library this meter reads.
    vendor: ClassVar[str] = ""
    #: Method names for a counter difference and for integrated power polling.
    counter_method: ClassVar[str] = ""
    poll_method: ClassVar[str] = ""

    def __init__(
        self,
        measurement: dict[str, Any],
        *,
        config: dict[str, Any] | None = None,
        poll_interval_s: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Open the vendor library and pick the experiment's GPUs (``config``: its experiment
        config, None for every visible GPU); MeterUnavailable when there are none."""
        super().__init__(measurement)
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._poller: PowerPoller | None = None
        self._running = False
        self._closed = False
        try:
            self._gpus: GPUs = open_vendor(self.vendor)
        except GPUUnavailable as exc:
            raise MeterUnavailable(str(exc)) from exc
        try:
            self.scope: Scope = select(self._gpus, config)
            self._devices = [self._probe(g) for g in self.scope.measured]
            self._versions = self._gpus.library_versions()
        except BaseException as exc:
            self._gpus.close()
            if isinstance(exc, GPUError):
                raise MeterUnavailable(str(exc)) from exc
            raise
        self._notes = list(self.scope.notes)
        methods = {d.method for d in self._devices}
        self.update_period_s = max(
            (COUNTER_UPDATE_PERIOD_S if m == self.counter_method else poll_interval_s)
            for m in methods
        )
        for d in self._devices:
            if d.mig_enabled:
                self._notes.append(
                    f"MIG is enabled on GPU {d.gpu.index}: energy is of the whole physical GPU "
                    "(MIG instances have no separate energy counters)"
                )

    def _probe(self, gpu: GPU) -> _Device:
        try:
            gpu.energy_counter()
            method = self.counter_method
        except GPUNotSupported:
            try:
                gpu.power_mw()
            except GPUError as exc:
                raise MeterUnavailable(
                    f"GPU {gpu.index} ({gpu.name}) reports neither an energy counter nor power: "
                    f"{exc}"
                ) from exc
            method = self.poll_method
        return _Device(gpu, method, gpu.mig_enabled())

    # -- measuring ----------------------------------------------------------------------------
    def start(self) -> None:
        """Read the energy counters and start the power poller for GPUs without one."""
        if self._running:
            raise RuntimeError(f"{self.name} meter already started")
        if self._closed:
            raise RuntimeError(f"{self.name} meter is closed")
        polled = [d for d in self._devices if d.method == self.poll_method]
        self._poller = None
        if polled:
            self._poller = PowerPoller(
                [d.gpu.power_mw for d in polled], self._poll_interval_s, self._clock
            )
        self._t0 = self._clock()
        for d in self._devices:
            if d.method == self.counter_method:
                d.start = d.gpu.energy_counter()
        if self._poller is not None:
            self._poller.start()
        self._running = True

    def _counter_joules(self, d: _Device, raw: dict[str, Any] | None = None) -> float:
        """Joules since ``start()`` on a counter device; ``raw`` receives the two readings."""
        assert d.start is not None
        try:
            end = d.gpu.energy_counter()
            joules = end.joules_since(d.start)
        except GPUError as exc:
            raise RuntimeError(f"{self.name}: GPU {d.gpu.index}: {exc}") from exc
        if raw is not None:
            raw[str(d.gpu.index)] = {
                "start": d.start.raw,
                "end": end.raw,
                "resolution_j": end.resolution_j,
                "wrapped": end.raw < d.start.raw,
            }
        return joules

    def read_cumulative(self) -> dict[str, float] | None:
        """GPU energy (J, all measured GPUs) since ``start()``: counters now minus at start, plus
        the power integral so far (with a fresh power sample) for GPUs without a counter.

        Thread-safe; None when no window is open. RuntimeError when a counter went backwards."""
        if not self._running:
            return None
        total = sum(
            self._counter_joules(d) for d in self._devices if d.method == self.counter_method
        )
        poller = self._poller
        if poller is not None:
            total += sum(poller.energy_now())
        return {"gpu": total}

    def stop(self) -> list[EnergyComponent]:
        """Read the counters again, stop the poller; return one ``gpu`` component."""
        if not self._running:
            raise RuntimeError(f"{self.name} meter stopped without start()")
        self._running = False
        energy: dict[int, float] = {}
        raw: dict[str, Any] = {}  # per device: the counter readings the figure comes from
        for d in self._devices:
            if d.method == self.counter_method:
                energy[d.gpu.index] = self._counter_joules(d, raw)
        t1 = self._clock()
        details: dict[str, Any] = {"counter_readings": raw} if raw else {}
        if self._poller is not None:
            polled = [d for d in self._devices if d.method == self.poll_method]
            for d, joules in zip(polled, self._poller.stop(), strict=True):
                energy[d.gpu.index] = joules
            details["poll_interval_s"] = self._poll_interval_s
            details["poll_samples"] = len(self._poller.samples)
        methods = {str(d.gpu.index): d.method for d in self._devices}
        devices = [
            {
                "id": str(d.gpu.index),
                **d.info(),
                "energy_j": energy[d.gpu.index],
                **({"mig": "parent GPU counter"} if d.mig_enabled else {}),
            }
            for d in self._devices
        ]
        details.update(
            duration_s=t1 - self._t0, method_per_device=methods, scope=dict(self.scope.chosen_by)
        )
        if self._notes:
            details["notes"] = list(self._notes)
        return [
            EnergyComponent(
                meter=self.name,
                # One polled GPU makes the whole figure a polled one (less exact than a counter).
                method=self.poll_method
                if self.poll_method in methods.values()
                else self.counter_method,
                domain="gpu",
                is_estimate=False,
                energy_j=sum(energy.values()),
                devices=devices,
                details=details,
            )
        ]

    def describe(self) -> dict[str, Any]:
        """Driver/library versions and, per measured GPU, index, name, UUID, method, MIG mode."""
        out = super().describe()
        out["vendor"] = self.vendor
        out["driver_version"] = self._versions.get("driver")
        for key, value in self._versions.items():
            if key != "driver":
                out[f"{key}_version"] = value
        out["scope"] = dict(self.scope.chosen_by)
        out["devices"] = [
            {"index": d.gpu.index, **d.info(), "mig_enabled": d.mig_enabled} for d in self._devices
        ]
        out["not_measured"] = [{"index": g.index, "uuid": g.uuid} for g in self.scope.outside]
        if self._notes:
            out["notes"] = list(self._notes)
        return out

    def close(self) -> None:
        """Stop a running poller and release the vendor library (once)."""
        if self._closed:
            return
        if self._running and self._poller is not None:
            self._poller.cancel()
        self._running = False
        self._closed = True
        self._gpus.close()
