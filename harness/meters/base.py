"""The meter protocol.

A meter is constructed before the measured window (raising ``MeterUnavailable`` right there when its
hardware or library is missing), started at the window's first instant and stopped at its last, and
then reports one ``EnergyComponent`` per energy domain it covers. Every component names its method
and whether it is an estimate; nothing downstream may drop that label.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from harness.contract.descriptions import MeterDescription

#: Energy domains, in the order results list them ("ane": Apple's Neural Engine).
DOMAINS = ("gpu", "cpu", "dram", "ane")


def __getattr__(name: str) -> Any:
    # METHODS: the methods components may report, from the registered meters' descriptions
    # (computed on use: the registry imports the meter modules, which import this one).
    if name == "METHODS":
        from harness.contract import registry

        return tuple(registry.energy_methods())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class MeterUnavailable(RuntimeError):
    """This meter cannot measure here; the message says why in one line."""


@dataclass
class EnergyComponent:
    """Energy of one domain over the measured window, as stored in the result."""

    meter: str
    method: str
    domain: str
    is_estimate: bool
    energy_j: float
    devices: list[dict[str, Any]] | None = None  # per device: {"id", "name", "energy_j"}
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["devices"] is None:
            del out["devices"]
        return out


class Meter(ABC):
    """Base class of energy meters: ``with meter: <measured region>``, then ``components``."""

    #: Registry name (the description's name).
    name: str = ""
    #: What this meter is, as data: registry, schema check, methodology page and doctor read it.
    description: ClassVar[MeterDescription]
    #: Domains this meter reports.
    domains: tuple[str, ...] = ()
    #: How often the underlying reading changes (s): windows much shorter than this are unreliable,
    #: and a timeline sampled faster than this repeats values. None: unknown.
    update_period_s: float | None = None

    def __init__(self, measurement: dict[str, Any]) -> None:
        """Check availability; raise MeterUnavailable (one line, why) when this meter cannot run."""
        self.measurement = measurement
        self.components: list[EnergyComponent] = []

    @abstractmethod
    def start(self) -> None:
        """Begin measuring (take the first counter reading, start a poller, ...)."""

    @abstractmethod
    def stop(self) -> list[EnergyComponent]:
        """End measuring and return one component per domain."""

    def read_cumulative(self) -> dict[str, float] | None:
        """Energy (J) per domain accumulated since this window's ``start()``, read now.

        Safe to call from another thread while the window is open (the power timeline samples it).
        None: this meter cannot be read mid-window (an estimate computed at ``stop()``), or no
        window is open.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """What this meter sees (devices, files, library versions), for provenance."""
        return {"name": self.name, "domains": list(self.domains)}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (NVML shutdown, ...); called once at the end of the harness process."""

    def __enter__(self) -> Meter:
        self.components = []
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.components = self.stop()
