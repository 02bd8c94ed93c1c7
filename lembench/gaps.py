"""Thermal gaps between harness launches: fixed seconds, then (optionally) until the GPUs cooled.

``gap_s`` pauses a fixed time between launches. A fixed pause is either too short (a hot GPU
starts the next window throttled or with higher leakage power, so the first measurements of a
cycle read high) or wasted (it was cool long ago). ``gap: {until_temperature_c, max_s, poll_s}``
waits, after ``gap_s``, until every GPU of the host reports at most ``until_temperature_c`` through
NVML (``nvmlDeviceGetTemperature``, the GPU die sensor), polling every ``poll_s``, at most
``max_s``. On a host whose GPUs cannot report a temperature (no NVML, no GPU) only ``gap_s``
applies, and that is said once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GapOutcome:
    """What one gap did: how long it waited, and whether the GPUs reached the target."""

    waited_s: float
    temperatures_c: list[float] | None  # at the end; None: not readable here
    cooled: bool | None  # None: no temperature target, or not readable


def gpu_temperatures() -> list[float] | None:
    """Every NVML GPU's temperature (°C), in NVML order; None when NVML or a GPU's sensor is
    unavailable (the caller then only waits the fixed gap)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        count = pynvml.nvmlDeviceGetCount()
        if not count:
            return None
        temps = []
        for i in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            temps.append(
                float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
            )
        return temps
    except Exception:  # a GPU without a readable sensor: no temperature rule on this host
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


class ThermalGap:
    """The pause before every launch but the first (``wait``), per the suite's settings."""

    def __init__(
        self,
        settings: dict[str, Any],
        notice: Callable[[str], None] | None = None,
        *,
        read: Callable[[], list[float] | None] = gpu_temperatures,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.gap_s = float(settings.get("gap_s") or 0.0)
        self.rule = settings.get("gap")
        self.notice = notice or (lambda _line: None)
        self.read, self.clock, self.sleep = read, clock, sleep
        self._told = False

    def wait(self) -> GapOutcome:
        """Sleep ``gap_s``, then wait for the temperature target (if any) up to ``max_s``."""
        start = self.clock()
        if self.gap_s:
            self.sleep(self.gap_s)
        if not self.rule:
            return GapOutcome(self.clock() - start, None, None)
        target = float(self.rule["until_temperature_c"])
        max_s = float(self.rule.get("max_s", 120))
        poll_s = float(self.rule.get("poll_s", 2))
        begun = self.clock()
        temps = self.read()
        if temps is None:
            if not self._told:
                self._told = True
                self.notice(
                    f"gap.until_temperature_c: no GPU temperature readable here (NVML); "
                    f"waiting only gap_s={self.gap_s:g} s between launches"
                )
            return GapOutcome(self.clock() - start, None, None)
        while max(temps) > target and self.clock() - begun < max_s:
            self.sleep(min(poll_s, max(0.0, max_s - (self.clock() - begun))))
            temps = self.read() or temps
        cooled = max(temps) <= target
        if not cooled:
            self.notice(
                f"GPUs still at {max(temps):.0f} °C after gap.max_s={max_s:g} s "
                f"(target {target:g} °C): the next launch starts warm"
            )
        return GapOutcome(self.clock() - start, temps, cooled)
