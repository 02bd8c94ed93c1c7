"""Small statistics shared by the benchmark scripts (ratios measured in one run)."""

from __future__ import annotations

import statistics


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """(median, low, high): a distribution-free ~95% interval of the median, the order statistics
    at n/2 -+ 0.98 sqrt(n) (binomial, normal approximation); with fewer than 6 values the full
    range, the honest answer for so few."""
    s = sorted(values)
    n = len(s)
    if n < 6:
        return statistics.median(s), s[0], s[-1]
    half = 0.98 * n**0.5
    lo = max(int(n / 2 - half), 0)
    hi = min(int(n / 2 + half + 1), n - 1)
    return statistics.median(s), s[lo], s[hi]
