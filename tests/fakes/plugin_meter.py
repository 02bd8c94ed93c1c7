"""A third-party meter as a plugin would ship it (entry point group ``lembench.meters``): used by
tests to prove that a plugin's energy method validates like a built-in one."""

from __future__ import annotations

from typing import Any

from harness.contract.descriptions import EnergyMethod, MeterDescription
from harness.meters.base import EnergyComponent, Meter


class WallPlugMeter(Meter):
    """Whole-system energy from a metered wall plug, read by the plugin's own code."""

    name = "wallplug"
    domains = ("cpu",)
    description = MeterDescription(
        name="wallplug",
        summary="A metered wall socket (plugin example).",
        methods=(
            EnergyMethod(
                "wallplug_counter",
                "measured",
                "The socket's cumulative energy register, end minus start.",
            ),
        ),
        domains=("cpu",),
        platforms=("linux",),
        enable_hint="plug the machine into the metered socket",
    )

    def __init__(self, measurement: dict[str, Any]) -> None:
        super().__init__(measurement)
        self.joules = 0.0

    def start(self) -> None:
        self.joules = 0.0

    def stop(self) -> list[EnergyComponent]:
        return [EnergyComponent(self.name, "wallplug_counter", "cpu", False, self.joules)]
