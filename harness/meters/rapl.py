"""CPU package and DRAM energy from the Linux powercap RAPL counters.

Layout read (``/sys/class/powercap``, or ``$LEMBENCH_POWERCAP_ROOT``, or the ``root`` argument)::

    intel-rapl:0/name               "package-0"        -> domain cpu
    intel-rapl:0/energy_uj          cumulative microjoules, wraps at max_energy_range_uj
    intel-rapl:0/max_energy_range_uj
    intel-rapl:0:0/name             "dram"             -> domain dram (also nested in intel-rapl:0/)
    intel-rapl:0:1/name             "core", "uncore"   -> ignored (inside the package figure)

AMD (Zen, kernel 5.8+) uses the same ``intel-rapl`` control type and names, usually without dram.
``psys`` and ``intel-rapl-mmio`` zones are ignored: they overlap the packages. Sockets are summed
per domain and kept per zone in ``devices``.

The counters wrap (every few minutes at high power on some parts). Two reads cannot tell how many
times a counter wrapped in a long window, so a light daemon thread reads every counter every
second (configurable) and accumulates the deltas, handling one wrap per interval.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contract.descriptions import EnergyMethod, MeterDescription
from harness.meters.base import EnergyComponent, Meter, MeterUnavailable

DEFAULT_ROOT = "/sys/class/powercap"
ENV_ROOT = "LEMBENCH_POWERCAP_ROOT"
ENV_INTERVAL = "LEMBENCH_RAPL_INTERVAL_S"
#: Counter sampling period; far below the shortest wrap period of real parts (minutes).
SAMPLE_INTERVAL_S = 1.0

_ZONE_RE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")


def _read_int(path: Path) -> int:
    """One integer sysfs attribute (raises PermissionError/OSError/ValueError as they come)."""
    with open(path) as f:
        return int(f.read().strip())


@dataclass
class _Zone:
    zone: str  # "intel-rapl:0"
    name: str  # "package-0"
    domain: str  # cpu | dram
    path: Path
    max_range_uj: int
    last_uj: int = 0
    acc_uj: int = 0

    def sort_key(self) -> tuple[int, int]:
        package, _, sub = self.zone.removeprefix("intel-rapl:").partition(":")
        return int(package), int(sub or -1)


def _domain_of(name: str) -> str | None:
    if name.startswith("package"):
        return "cpu"
    if name == "dram":
        return "dram"
    return None


class RaplMeter(Meter):
    """RAPL package (``cpu``) and DRAM (``dram``) energy; one component per domain found."""

    name = "rapl"
    domains = ("cpu", "dram")
    description = MeterDescription(
        name="rapl",
        summary="CPU package and DRAM energy from Linux powercap RAPL counters (Intel, AMD Zen).",
        methods=(
            EnergyMethod(
                "rapl",
                "measured",
                "Intel/AMD RAPL energy counters from /sys/class/powercap (package -> cpu, "
                "dram), read every second with counter wrap-around handled; deltas over the "
                "window.",
            ),
        ),
        domains=("cpu", "dram"),
        platforms=("linux",),
        enable_hint="make /sys/class/powercap/intel-rapl:*/energy_uj readable (root-only since "
        "Linux 5.10: run as root, or chmod/udev rule them for the benchmark user); in "
        "containers mount /sys/class/powercap",
        present_if=("/sys/class/powercap/intel-rapl",),
    )
    #: The kernel updates the RAPL counters about every millisecond.
    update_period_s = 0.001

    def __init__(
        self,
        measurement: dict[str, Any],
        *,
        root: str | os.PathLike[str] | None = None,
        sample_interval_s: float | None = None,
    ) -> None:
        """Find the zones and read each counter once; MeterUnavailable when absent/unreadable."""
        super().__init__(measurement)
        self.root = Path(root or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)
        if sample_interval_s is None:
            sample_interval_s = float(os.environ.get(ENV_INTERVAL) or SAMPLE_INTERVAL_S)
        self.sample_interval_s = sample_interval_s
        if not self.root.is_dir():
            raise MeterUnavailable(f"RAPL unavailable: {self.root} absent")
        self._zones = self._discover()
        if not any(z.domain == "cpu" for z in self._zones):
            raise MeterUnavailable(
                f"RAPL unavailable: no intel-rapl package zone under {self.root}"
            )
        # Read every counter now, so an unreadable one fails the meter here and not mid-run.
        for z in self._zones:
            self._read(z)
        self.domains = tuple(d for d in ("cpu", "dram") if any(z.domain == d for z in self._zones))
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._samples = 0
        self._running = False

    def _permission_error(self) -> MeterUnavailable:
        return MeterUnavailable(
            "RAPL files exist but are not readable (permission denied): run as root or "
            f"`sudo chmod a+r {self.root}/intel-rapl:*/energy_uj`"
        )

    def _discover(self) -> list[_Zone]:
        candidates: dict[str, Path] = {}
        for entry in self.root.iterdir():
            if _ZONE_RE.match(entry.name):
                candidates.setdefault(entry.name, entry)
                # Subzones are normally linked at the top level too, but not in every tree.
                for sub in entry.iterdir() if entry.is_dir() else ():
                    if _ZONE_RE.match(sub.name):
                        candidates.setdefault(sub.name, sub)
        zones = []
        for zone, path in candidates.items():
            try:
                name = (path / "name").read_text().strip()
            except OSError:
                continue  # not a zone we can identify
            domain = _domain_of(name)
            if domain is None or not (path / "energy_uj").exists():
                continue
            try:
                max_range = _read_int(path / "max_energy_range_uj")
            except PermissionError as exc:
                raise self._permission_error() from exc
            except (OSError, ValueError) as exc:
                raise MeterUnavailable(
                    f"RAPL zone {path} has no usable max_energy_range_uj: {exc}"
                ) from exc
            zones.append(_Zone(zone, name, domain, path, max_range))
        return sorted(zones, key=_Zone.sort_key)

    def _read(self, z: _Zone) -> int:
        try:
            return _read_int(z.path / "energy_uj")
        except PermissionError as exc:
            raise self._permission_error() from exc
        except (OSError, ValueError) as exc:
            raise MeterUnavailable(
                f"RAPL counter {z.path / 'energy_uj'} unreadable: {exc}"
            ) from exc

    # -- measuring ----------------------------------------------------------------------------
    def _accumulate(self) -> None:
        with self._lock:
            for z in self._zones:
                now = _read_int(z.path / "energy_uj")
                # A lower reading means the counter wrapped (once, given the sampling period).
                delta = now - z.last_uj if now >= z.last_uj else now + z.max_range_uj - z.last_uj
                z.acc_uj += delta
                z.last_uj = now
            self._samples += 1

    def _run(self) -> None:
        while not self._stop_event.wait(self.sample_interval_s):
            try:
                self._accumulate()
            except BaseException as exc:  # re-raised in stop(): a failed read never reads as zero
                self._error = exc
                return

    def start(self) -> None:
        """Read every counter and start the sampling thread."""
        if self._running:
            raise RuntimeError("rapl meter already started")
        with self._lock:
            for z in self._zones:
                z.last_uj = _read_int(z.path / "energy_uj")
                z.acc_uj = 0
            self._samples = 0
        self._error = None
        self._stop_event.clear()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="lembench-rapl", daemon=True)
        self._thread.start()
        self._running = True

    def _join(self) -> None:
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def read_cumulative(self) -> dict[str, float] | None:
        """Energy (J) per domain since ``start()``, including a fresh read of every counter now.

        Thread-safe: the read goes through the same lock and wrap handling as the sampling thread
        (so reading often only makes wraps safer). None when no window is open.
        """
        if not self._running:
            return None
        self._accumulate()
        with self._lock:
            return {
                domain: sum(z.acc_uj for z in self._zones if z.domain == domain) / 1e6
                for domain in self.domains
            }

    def stop(self) -> list[EnergyComponent]:
        """Stop sampling, read once more; return a ``cpu`` and (if present) ``dram`` component."""
        if not self._running:
            raise RuntimeError("rapl meter stopped without start()")
        self._running = False
        self._join()
        if self._error is not None:
            raise RuntimeError(f"RAPL sampling failed: {self._error}") from self._error
        self._accumulate()
        duration = time.perf_counter() - self._t0
        components = []
        for domain in self.domains:
            zones = [z for z in self._zones if z.domain == domain]
            devices = [{"id": z.zone, "name": z.name, "energy_j": z.acc_uj / 1e6} for z in zones]
            components.append(
                EnergyComponent(
                    meter=self.name,
                    method="rapl",
                    domain=domain,
                    is_estimate=False,
                    energy_j=sum(z.acc_uj for z in zones) / 1e6,
                    devices=devices,
                    details={
                        "duration_s": duration,
                        "sample_interval_s": self.sample_interval_s,
                        "samples": self._samples,
                    },
                )
            )
        return components

    def describe(self) -> dict[str, Any]:
        """The powercap root and, per zone used, its name, domain and wrap range."""
        out = super().describe()
        out.update(
            root=str(self.root),
            sample_interval_s=self.sample_interval_s,
            zones=[
                {
                    "zone": z.zone,
                    "name": z.name,
                    "domain": z.domain,
                    "max_energy_range_uj": z.max_range_uj,
                }
                for z in self._zones
            ],
        )
        return out

    def close(self) -> None:
        """Stop the sampling thread if a window is still open."""
        self._running = False
        self._join()
