"""The abstract GPU of the device layer: one interface over each vendor's management library.

Shaped after Zeus's device layer (github.com/ml-energy/zeus, ``zeus/device/gpu/common.py``): a
``GPU`` answers queries about one physical device in fixed units (mJ, mW, MHz, degC, bytes) and
raises ``GPUNotSupported`` for a query this device or driver cannot answer; a ``GPUs`` collection
owns the library's init/shutdown (the only place a vendor library is opened) and enumerates every
device it sees. Which of them an experiment uses is decided in ``harness.hardware.gpu.scope``.

Meters (``harness.meters.gpu``), telemetry, the environment snapshot, the self test and the
controller's image choice all reach GPUs through this interface, so a new vendor is one module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


class GPUError(RuntimeError):
    """A GPU query failed (driver error, device lost...); the message says which and why."""


class GPUNotSupported(GPUError):
    """This device, driver or binding cannot answer this query (asking again will not help)."""


class GPUUnavailable(GPUError):
    """The vendor library is missing, does not initialise, or sees no device (one line, why)."""


@dataclass(frozen=True)
class GPUProcess:
    """A compute process on a GPU, as the driver lists it (pids are the host's in containers)."""

    pid: int
    used_memory_bytes: int | None


@dataclass(frozen=True)
class EnergyCounter:
    """One reading of a device's cumulative energy counter.

    ``raw`` in units of ``resolution_j`` joules; the counter wraps to 0 after ``wrap_raw`` (None:
    the counter is wide enough never to wrap in practice)."""

    raw: int
    resolution_j: float
    wrap_raw: int | None = None

    def joules_since(self, start: EnergyCounter) -> float:
        """Energy between ``start`` and this reading; one wrap-around is undone.

        Raises GPUError when the counter went backwards and cannot have wrapped (driver reset)."""
        delta = self.raw - start.raw
        if delta < 0:
            if self.wrap_raw is None:
                raise GPUError(
                    f"energy counter went backwards ({start.raw} -> {self.raw}; driver reset?)"
                )
            delta += self.wrap_raw
        return delta * self.resolution_j


@dataclass(frozen=True)
class ClockEventReason:
    """One clock event ("throttle") reason bit: its stable key (timeline files) and a label."""

    bit: int
    key: str
    label: str


#: Clock event reasons, NVML's ``nvmlClocksEventReason*`` bits (plus board limit and reliability,
#: known only under the deprecated ``nvmlClocksThrottleReason*`` names). The one table of them:
#: telemetry records keys, the throttling warning shows labels.
CLOCK_EVENT_REASONS: tuple[ClockEventReason, ...] = (
    ClockEventReason(0x001, "gpu_idle", "GPU idle"),
    ClockEventReason(0x002, "applications_clocks_setting", "applications clocks setting"),
    ClockEventReason(0x004, "sw_power_cap", "SW power cap"),
    ClockEventReason(0x008, "hw_slowdown", "HW slowdown"),
    ClockEventReason(0x010, "sync_boost", "sync boost"),
    ClockEventReason(0x020, "sw_thermal_slowdown", "SW thermal slowdown"),
    ClockEventReason(0x040, "hw_thermal_slowdown", "HW thermal slowdown"),
    ClockEventReason(0x080, "hw_power_brake_slowdown", "HW power brake slowdown"),
    ClockEventReason(0x100, "display_clock_setting", "display clock setting"),
    ClockEventReason(0x200, "board_limit", "board limit"),
    ClockEventReason(0x400, "reliability", "reliability"),
)
#: Not throttling: the GPU is idle (between batches), or clocks were set on purpose.
BENIGN_CLOCK_EVENTS = 0x001 | 0x002


def throttle_reasons(mask: int | None) -> list[str]:
    """Keys of the bits in ``mask`` that hold the GPU back (benign left out; unknown as hex)."""
    if not mask:
        return []
    keys = {r.bit: r.key for r in CLOCK_EVENT_REASONS}
    return [
        keys.get(1 << bit, f"0x{1 << bit:x}")
        for bit in range(64)
        if mask & (1 << bit) and not (1 << bit) & BENIGN_CLOCK_EVENTS
    ]


class GPU(ABC):
    """One physical GPU. ``index`` is the vendor library's index (NVML / amdsmi enumeration).

    Every query raises ``GPUNotSupported`` when this device cannot answer it and ``GPUError`` on
    other failures; the caller decides what a missing figure means.
    """

    #: Vendor key ("nvidia", "amd"): the meters' and environment's name for the library family.
    vendor: ClassVar[str] = ""

    def __init__(self, index: int, uuid: str, name: str) -> None:
        self.index = index
        self.uuid = uuid
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.index}, {self.name!r}, {self.uuid!r})"

    # -- energy and power ---------------------------------------------------------------------
    @abstractmethod
    def energy_counter(self) -> EnergyCounter:
        """The cumulative energy counter now (GPUNotSupported where the device has none)."""

    @abstractmethod
    def power_mw(self) -> int:
        """Board power now, mW (the driver's reading; some drivers average it over ~1 s)."""

    @abstractmethod
    def power_limit_mw(self) -> int:
        """The enforced power limit, mW."""

    def default_power_limit_mw(self) -> int:
        """The factory default power limit, mW."""
        raise GPUNotSupported("default power limit")

    # -- telemetry ----------------------------------------------------------------------------
    @abstractmethod
    def temperature_c(self) -> float:
        """Core (edge/junction, as the vendor reports it) temperature, degC."""

    @abstractmethod
    def clocks_mhz(self) -> tuple[int | None, int | None]:
        """(compute/SM clock, memory clock) now, MHz; None where one is not reported."""

    def max_clocks_mhz(self) -> tuple[int | None, int | None]:
        """(max compute clock, max memory clock), MHz."""
        raise GPUNotSupported("max clocks")

    @abstractmethod
    def utilization_pct(self) -> tuple[float | None, float | None]:
        """(compute busy %, memory controller busy %)."""

    def clock_event_mask(self) -> int:
        """Clock event ("throttle") reason bits, as in ``CLOCK_EVENT_REASONS``."""
        raise GPUNotSupported("clock event reasons")

    @abstractmethod
    def processes(self) -> list[GPUProcess]:
        """Compute processes running on this device."""

    # -- static facts -------------------------------------------------------------------------
    def mig_enabled(self) -> bool | None:
        """MIG (or another partitioning) on: energy is then the parent device's. None: n/a."""
        return None

    def persistence_mode(self) -> bool | None:
        """Driver persistence mode, None where the notion does not apply."""
        return None

    def ecc_enabled(self) -> bool | None:
        """ECC memory on, None where unknown."""
        return None

    def memory_total_bytes(self) -> int | None:
        """Device memory, None where unknown."""
        return None


class GPUs(ABC):
    """Every GPU one vendor library sees; owns that library's init and shutdown (once each)."""

    #: Vendor key, as ``GPU.vendor``.
    vendor: ClassVar[str] = ""
    #: Environment variables that restrict the devices a process uses, in groups applied in order
    #: (each group selects among the devices the previous one left; within a group the first
    #: variable that is set wins), entries by index or UUID. See ``harness.hardware.gpu.scope``.
    visible_env: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def __init__(self, gpus: Sequence[GPU], driver_version: str | None) -> None:
        self.gpus: list[GPU] = list(gpus)
        self.driver_version = driver_version
        self._closed = False

    def __len__(self) -> int:
        return len(self.gpus)

    def mig_parent_uuid(self, mig_uuid: str) -> str | None:
        """UUID of the physical GPU a MIG instance (``MIG-...``) lives on; None if unknown."""
        return None

    def library_versions(self) -> dict[str, str | None]:
        """Versions of the driver and library, for provenance."""
        return {"driver": self.driver_version}

    def close(self) -> None:
        """Release the vendor library (once; later calls do nothing)."""
        if not self._closed:
            self._closed = True
            self._shutdown()

    @abstractmethod
    def _shutdown(self) -> None:
        """Undo this object's library init."""

    def __enter__(self) -> GPUs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
