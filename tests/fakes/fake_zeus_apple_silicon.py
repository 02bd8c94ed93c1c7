"""A fake of the ``zeus_apple_silicon`` module (PyPI ``zeus-apple-silicon``) for tests.

Mirrors its documented Python interface (ml-energy/zeus-apple-silicon README):
``AppleEnergyMonitor`` with ``begin_window(key)`` / ``end_window(key)`` (a key may not be open
twice; ending an unknown key raises), returning ``AppleEnergyMetrics`` whose fields are
millijoules or None where the chip does not report them. Tests drive the SoC's counters through
``FakeSoc.mj``.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

FIELDS = (
    "cpu_total_mj",
    "efficiency_cores_mj",
    "performance_cores_mj",
    "efficiency_core_manager_mj",
    "performance_core_manager_mj",
    "dram_mj",
    "gpu_mj",
    "gpu_sram_mj",
    "ane_mj",
)


@dataclass
class AppleEnergyMetrics:
    cpu_total_mj: int | None = None
    efficiency_cores_mj: int | None = None
    performance_cores_mj: int | None = None
    efficiency_core_manager_mj: int | None = None
    performance_core_manager_mj: int | None = None
    dram_mj: int | None = None
    gpu_mj: int | None = None
    gpu_sram_mj: int | None = None
    ane_mj: int | None = None


class FakeSoc:
    """The chip's cumulative counters (mJ); a field set to None is not reported by this chip."""

    def __init__(self, **mj: int | None) -> None:
        self.mj: dict[str, int | None] = dict.fromkeys(FIELDS, 0)
        self.mj.update(mj)


def module(soc: FakeSoc) -> types.ModuleType:
    """A ``zeus_apple_silicon`` module object reading ``soc``."""

    class AppleEnergyMonitor:
        def __init__(self) -> None:
            self._open: dict[str, dict[str, int | None]] = {}

        def begin_window(self, key: str) -> None:
            if key in self._open:
                raise RuntimeError(f"Measurement window '{key}' already exists")
            self._open[key] = dict(soc.mj)

        def end_window(self, key: str) -> AppleEnergyMetrics:
            if key not in self._open:
                raise RuntimeError(f"No measurement window '{key}'")
            start = self._open.pop(key)
            return AppleEnergyMetrics(
                **{
                    f: None if soc.mj[f] is None else int(soc.mj[f]) - int(start[f] or 0)
                    for f in FIELDS
                }
            )

    mod = types.ModuleType("zeus_apple_silicon")
    mod.AppleEnergyMonitor = AppleEnergyMonitor  # type: ignore[attr-defined]
    mod.AppleEnergyMetrics = AppleEnergyMetrics  # type: ignore[attr-defined]
    return mod
