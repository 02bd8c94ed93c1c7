"""Where a suite's wall time went: model loads, idle baselines, warmups, measured windows, the rest.

Each harness process reports its own parts in one ``timings`` event at its end (seconds of wall
time: ``startup_s`` from process start to its first step, then ``load_s``, ``baseline_s``,
``warmup_s``, ``windows_s``, ``probe_s``: the CPU peak probe when not cached); the controller
adds them up over the invocation and calls everything else of its own wall time overhead (result
writing and storing, scoring, gaps between groups).
A harness that dies before its ``timings`` event leaves its time in the overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The parts in the order they are printed, with their labels.
PARTS = (
    ("startup", "process start + imports"),
    ("load", "model load"),
    ("baseline", "idle baseline"),
    ("warmup", "warmup"),
    ("windows", "measured windows"),
    ("probe", "CPU peak probe"),
)


@dataclass
class WallTimes:
    """Wall seconds per part, summed over an invocation's harness processes."""

    parts_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(dict(PARTS), 0.0))
    launches: int = 0  # harness processes that reported their timings

    def on_event(self, event: dict[str, Any]) -> None:
        """Take a harness progress event; only ``timings`` events count."""
        if event.get("event") != "timings":
            return
        self.launches += 1
        for part in self.parts_s:
            value = event.get(f"{part}_s")
            if isinstance(value, int | float) and value >= 0:
                self.parts_s[part] += float(value)

    def breakdown(self, total_s: float) -> list[tuple[str, float]]:
        """(label, seconds) per part, then the overhead: ``total_s`` minus the parts (never
        below 0: the parts are measured by other clocks, in other processes)."""
        rows = [(label, self.parts_s[part]) for part, label in PARTS]
        rows.append(("other overhead", max(total_s - sum(self.parts_s.values()), 0.0)))
        return rows

    def line(self, total_s: float) -> str:
        """One line for the end of ``lembench run``: total, each part with its share, and the
        wall/work ratio (wall time per second of measured window)."""
        rows = self.breakdown(total_s)
        shares = ", ".join(
            f"{label} {s:.1f} s ({s / total_s:.0%})" for label, s in rows if total_s > 0
        )
        windows = self.parts_s["windows"]
        ratio = f"; wall/work {total_s / windows:.2f}" if windows > 0 else ""
        return f"wall time {total_s:.1f} s: {shares}{ratio}"
