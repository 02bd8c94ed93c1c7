"""CPU, GPU and Neural Engine energy on Apple Silicon Macs.

Two readers of the same source, Apple's SoC energy counters (the IOReport "Energy Model" channels,
which powermetrics and Activity Monitor also read; Apple does not document their accuracy):

1. ``zeus-apple-silicon`` (PyPI, ml-energy/zeus-apple-silicon, kept up with Zeus): reads IOReport
   directly and needs no sudo. ``AppleEnergyMonitor().begin_window(label)`` /
   ``end_window(label)`` return ``AppleEnergyMetrics`` in millijoules: ``cpu_total_mj``,
   ``gpu_mj``, ``ane_mj``, ``dram_mj`` and finer fields; a field the chip does not report is None.
   Windows may overlap, so the measured window is one window (exact), and mid-window readings for
   the power timeline chain short windows (a few microseconds between them are not counted).
2. ``powermetrics`` (ships with macOS, needs root): ``powermetrics -f plist -i <ms> --samplers
   cpu_power,gpu_power,ane_power`` writes one plist document per interval, separated by NUL bytes
   (``man powermetrics``); its ``processor`` dict has ``cpu_energy``, ``gpu_energy``,
   ``ane_energy`` (mJ over the interval) beside ``*_power`` (mW) and ``elapsed_ns``. The window's
   energy is the sum over the samples that end inside it, the first one prorated by its overlap.

macmon-lib (PyPI) also reads IOReport without sudo, but exposes power samples, not energy
windows, so zeus-apple-silicon is preferred. Untested on a Mac by lembench: parsing is tested
against sample plists in tests/data (tests/data/powermetrics/README.md says where their format
is documented) and the zeus reader against a fake of its documented interface.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

from harness.contract.descriptions import EnergyMethod, MeterDescription
from harness.meters.base import EnergyComponent, Meter, MeterUnavailable

IOREPORT = "apple_ioreport"
POWERMETRICS = "apple_powermetrics"
#: powermetrics sampling interval (ms): its figures are interval sums, so this is its granularity.
POWERMETRICS_INTERVAL_MS = 100
#: zeus-apple-silicon field -> domain. (dram_mj exists but is not reported on every chip.)
ZEUS_FIELDS = {"cpu": "cpu_total_mj", "gpu": "gpu_mj", "ane": "ane_mj", "dram": "dram_mj"}
#: powermetrics ``processor`` key -> domain.
PLIST_FIELDS = {"cpu": "cpu_energy", "gpu": "gpu_energy", "ane": "ane_energy"}


@dataclass(frozen=True)
class PowermetricsSample:
    """One powermetrics interval: its end (our clock), length, and energy per domain (J)."""

    end_s: float
    elapsed_s: float
    energy_j: dict[str, float]


def parse_powermetrics(data: bytes) -> list[dict[str, Any]]:
    """The plist documents in powermetrics ``-f plist`` output (NUL-separated; a trailing partial
    document, still being written, is left out)."""
    docs = []
    for chunk in data.split(b"\0"):
        chunk = chunk.strip()
        if not chunk:
            continue
        try:
            docs.append(plistlib.loads(chunk))
        except (plistlib.InvalidFileException, ExpatError):
            continue  # the document powermetrics is still writing
    return docs


def sample_energy(doc: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """(interval length s, energy J per domain) of one powermetrics document. Energy keys are
    mJ; where only power is given (mW) it is multiplied by the interval."""
    elapsed_s = float(doc.get("elapsed_ns", 0)) / 1e9
    proc = doc.get("processor") or {}
    out: dict[str, float] = {}
    for domain, key in PLIST_FIELDS.items():
        if key in proc:
            out[domain] = float(proc[key]) / 1000.0
        elif key.replace("energy", "power") in proc and elapsed_s > 0:
            out[domain] = float(proc[key.replace("energy", "power")]) / 1000.0 * elapsed_s
    return elapsed_s, out


def window_energy(
    samples: Iterable[PowermetricsSample], t0: float, t1: float
) -> tuple[dict[str, float], int]:
    """Energy per domain of the samples covering [t0, t1]: each sample's energy times the share of
    its interval inside the window (uniform power within one interval). Also the samples used."""
    total: dict[str, float] = {}
    used = 0
    for s in samples:
        start = s.end_s - s.elapsed_s
        overlap = min(s.end_s, t1) - max(start, t0)
        if overlap <= 0 or s.elapsed_s <= 0:
            continue
        share = min(1.0, overlap / s.elapsed_s)
        used += 1
        for domain, joules in s.energy_j.items():
            total[domain] = total.get(domain, 0.0) + joules * share
    return total, used


class _PowermetricsReader:
    """Runs ``powermetrics -f plist`` for the meter's lifetime and keeps its samples."""

    def __init__(self, interval_ms: int, clock: Callable[[], float], command: list[str]):
        self._clock = clock
        self._lock = threading.Lock()
        self.samples: list[PowermetricsSample] = []
        self.error: str | None = None
        self._proc = subprocess.Popen(
            [*command, "-f", "plist", "-i", str(interval_ms), "--samplers",
             "cpu_power,gpu_power,ane_power"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self._thread = threading.Thread(
            target=self._read, name="lembench-powermetrics", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        buffer = b""
        while True:
            chunk = self._proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            now = self._clock()
            for doc in parse_powermetrics(b"\0".join(complete)):
                elapsed, energy = sample_energy(doc)
                with self._lock:
                    self.samples.append(PowermetricsSample(now, elapsed, energy))
        err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        self.error = " ".join(err.split())[:300] or f"powermetrics exited ({self._proc.poll()})"

    def snapshot(self) -> list[PowermetricsSample]:
        with self._lock:
            return list(self.samples)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)


class AppleSiliconMeter(Meter):
    """Apple Silicon ``cpu``, ``gpu``, ``ane`` (and ``dram`` where reported) energy."""

    name = "apple"
    domains = ("cpu", "gpu", "ane")
    update_period_s = 0.1
    description = MeterDescription(
        name="apple",
        summary="Apple Silicon CPU, GPU and Neural Engine energy from the SoC's energy counters.",
        methods=(
            EnergyMethod(
                IOREPORT,
                "measured",
                "Apple's SoC energy counters (IOReport Energy Model channels) read without sudo "
                "through zeus-apple-silicon: one measurement window around the measured region, "
                "per domain (CPU, GPU, ANE, DRAM where reported).",
            ),
            EnergyMethod(
                POWERMETRICS,
                "measured",
                "The same counters through powermetrics (root): per-interval energies (100 ms) "
                "summed over the window, the edge intervals prorated by their overlap.",
            ),
        ),
        domains=("cpu", "gpu", "ane", "dram"),
        platforms=("darwin",),
        enable_hint="pip install zeus-apple-silicon (no sudo needed); otherwise run the harness "
        "as root so that powermetrics can be used",
    )

    def __init__(
        self,
        measurement: dict[str, Any],
        *,
        clock: Callable[[], float] = time.perf_counter,
        powermetrics: list[str] | None = None,
    ) -> None:
        """Prefer zeus-apple-silicon, else powermetrics as root; MeterUnavailable otherwise.
        ``powermetrics``: the command to run (tests pass a recorded-output player)."""
        super().__init__(measurement)
        self._clock = clock
        self._lock = threading.Lock()
        self._running = False
        self._monitor: Any = None
        self._reader: _PowermetricsReader | None = None
        self._segment = 0
        self._done_j: dict[str, float] = {}
        if powermetrics is None:
            if not sys.platform.startswith("darwin"):
                raise MeterUnavailable("Apple Silicon energy needs macOS")
            try:
                from zeus_apple_silicon import AppleEnergyMonitor

                self._monitor = AppleEnergyMonitor()
                self.method = IOREPORT
                return
            except ImportError:
                pass
            path = shutil.which("powermetrics") or "/usr/bin/powermetrics"
            if os.geteuid() != 0:
                raise MeterUnavailable(
                    "zeus-apple-silicon is not installed and powermetrics needs root "
                    "(pip install zeus-apple-silicon, or run with sudo)"
                )
            powermetrics = [path]
        self.method = POWERMETRICS
        self._reader = _PowermetricsReader(POWERMETRICS_INTERVAL_MS, clock, powermetrics)

    # -- measuring ----------------------------------------------------------------------------
    def start(self) -> None:
        """Open the window (zeus) or note its start (powermetrics keeps sampling)."""
        if self._running:
            raise RuntimeError("apple meter already started")
        self._t0 = self._clock()
        self._done_j = {}
        if self._monitor is not None:
            self._segment = 0
            self._monitor.begin_window("lembench-window")
            self._monitor.begin_window("lembench-seg-0")
        self._running = True

    @staticmethod
    def _zeus_joules(metrics: Any) -> dict[str, float]:
        out = {}
        for domain, field in ZEUS_FIELDS.items():
            value = getattr(metrics, field, None)
            if value is not None:
                out[domain] = float(value) / 1000.0
        return out

    def read_cumulative(self) -> dict[str, float] | None:
        """Energy (J) per domain since ``start()`` (thread-safe); None when no window is open."""
        if not self._running:
            return None
        with self._lock:
            if self._monitor is not None:
                seg = self._monitor.end_window(f"lembench-seg-{self._segment}")
                self._segment += 1
                self._monitor.begin_window(f"lembench-seg-{self._segment}")
                for domain, joules in self._zeus_joules(seg).items():
                    self._done_j[domain] = self._done_j.get(domain, 0.0) + joules
                return dict(self._done_j)
        assert self._reader is not None
        return window_energy(self._reader.snapshot(), self._t0, self._clock())[0]

    def stop(self) -> list[EnergyComponent]:
        """Close the window; one component per domain the chip reported."""
        if not self._running:
            raise RuntimeError("apple meter stopped without start()")
        self._running = False
        t1 = self._clock()
        details: dict[str, Any] = {"duration_s": t1 - self._t0}
        if self._monitor is not None:
            with self._lock:
                metrics = self._monitor.end_window("lembench-window")
                with contextlib.suppress(Exception):  # the chain is only for the timeline
                    self._monitor.end_window(f"lembench-seg-{self._segment}")
            energy = self._zeus_joules(metrics)
            details["reader"] = "zeus-apple-silicon"
        else:
            assert self._reader is not None
            # The interval that contains t1 ends after it: wait for it (at most ~2 intervals).
            deadline = time.monotonic() + 3 * POWERMETRICS_INTERVAL_MS / 1000.0
            while time.monotonic() < deadline and not any(
                s.end_s >= t1 for s in self._reader.snapshot()
            ):
                time.sleep(POWERMETRICS_INTERVAL_MS / 4000.0)
            energy, used = window_energy(self._reader.snapshot(), self._t0, t1)
            if not used:
                raise RuntimeError(
                    f"powermetrics produced no sample in the window: {self._reader.error}"
                )
            details.update(
                reader="powermetrics", samples=used, interval_ms=POWERMETRICS_INTERVAL_MS
            )
        if not energy:
            raise RuntimeError("the Apple energy counters reported no domain")
        return [
            EnergyComponent(self.name, self.method, domain, False, joules, details=dict(details))
            for domain, joules in sorted(energy.items())
        ]

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            method=self.method, reader="zeus-apple-silicon" if self._monitor else "powermetrics"
        )
        return out

    def close(self) -> None:
        """Stop powermetrics (if this meter started it)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
