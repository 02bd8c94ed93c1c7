"""One metric of one experiment, as the aggregation summarised it: the single reader of the
summary columns ``<metric>_mean/_std/_n/_ci95_low/_ci95_high`` that ``summarise`` writes, shared by
the report, the advice, reproduce and the console tables."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: The summary columns of each metric, in ``Stat``'s field order.
STAT_PARTS = ("mean", "std", "n", "ci95_low", "ci95_high")

_KEYS: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class Stat:
    """Summary of one metric over an experiment's successful runs."""

    mean: float | None
    std: float | None = None
    n: int = 0  # runs with a value
    low: float | None = None  # 95% Student-t interval; None with fewer than two values
    high: float | None = None

    @property
    def half_width(self) -> float | None:
        """Half the 95% interval; None without one."""
        return None if self.low is None or self.high is None else (self.high - self.low) / 2

    @property
    def rel_half_width(self) -> float | None:
        """Half the interval relative to the mean; None without an interval or with mean 0."""
        half = self.half_width
        return None if half is None or not self.mean else half / abs(self.mean)

    def overlaps(self, other: Stat) -> bool | None:
        """Whether the two 95% intervals overlap; None when either has none."""
        if None in (self.low, self.high, other.low, other.high):
            return None
        return not (self.high < other.low or other.high < self.low)  # type: ignore[operator]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def stat_of(row: dict[str, Any], metric: str) -> Stat:
    """The summary of ``metric`` in a summary row (a ``summarise`` row as a dict): NaN, infinities
    and non-numbers become None, a missing or non-integer count 0."""
    keys = _KEYS.get(metric)
    if keys is None:
        keys = _KEYS[metric] = tuple(f"{metric}_{part}" for part in STAT_PARTS)
    mean, std, n, low, high = (row.get(k) for k in keys)
    count = n if isinstance(n, int) and not isinstance(n, bool) else 0
    return Stat(_finite(mean), _finite(std), count, _finite(low), _finite(high))
