"""Confidence intervals over runs: Student-t intervals with the t quantile from scipy.stats.

The critical values come from ``scipy.stats.t.ppf`` (no hand-written table or series): the same
quantiles every statistics package uses, for any real number of degrees of freedom. Results are
cached: aggregation asks for one value per distinct run count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=4096)
def normal_critical(level: float = 0.95) -> float:
    """Two-sided critical value of the standard normal (1.959964 for 95%)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2.0))


@lru_cache(maxsize=4096)
def t_critical(df: float, level: float = 0.95) -> float:
    """Two-sided critical value of Student's t: P(|T| <= t) = ``level`` (scipy.stats.t.ppf).

    ``df`` >= 1, any real; ``math.inf`` gives the normal quantile (1.959964 for 95%).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if math.isinf(df):
        return normal_critical(level)
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, df))


def ci_half_width_pct(values: Iterable[float | None], level: float = 0.95) -> float | None:
    """Half-width of the ``level`` t-interval of ``values`` as a percentage of |mean| (the
    convergence criterion of ``cycles: {until_ci_pct}``); None below two values or at mean 0."""
    mean, _std, _n, low, high = mean_ci(values, level)
    if mean is None or low is None or high is None or mean == 0:
        return None
    return 100.0 * (high - low) / 2.0 / abs(mean)


def _clean(values: Iterable[float | None]) -> list[float]:
    """The values without None and NaN (missing metrics are not zeros)."""
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def mean_ci(
    values: Iterable[float | None], level: float = 0.95
) -> tuple[float | None, float | None, int, float | None, float | None]:
    """(mean, sample std, n, ci_low, ci_high) of ``values``; None and NaN are ignored.

    The interval is the Student-t interval mean ± t(n-1) x std / sqrt(n). With one value, std and
    the interval are None (nothing to estimate spread from); with none, everything but n is None.
    """
    xs = _clean(values)
    n = len(xs)
    if n == 0:
        return None, None, 0, None, None
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, None, 1, None, None
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_critical(n - 1, level) * std / math.sqrt(n)
    return mean, std, n, mean - half, mean + half


def cv(values: Iterable[float | None]) -> float | None:
    """Coefficient of variation std / |mean| (sample std); None with fewer than 2 values or a
    zero mean."""
    mean, std, _n, _lo, _hi = mean_ci(values)
    if mean is None or std is None or mean == 0:
        return None
    return std / abs(mean)
