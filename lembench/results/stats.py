"""Confidence intervals over runs, in pure Python (no scipy on the host).

The Student-t critical value is computed exactly for any number of degrees of freedom: the t CDF
is expressed through the regularized incomplete beta function (evaluated with Lentz's continued
fraction) and inverted by bisection. Results are cached: aggregation asks for one value per
distinct run count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

_TINY = 1e-300  # Lentz's guard against division by zero
_EPS = 1e-15  # continued-fraction convergence tolerance
_MAX_ITER = 100_000  # the fraction needs O(sqrt(a)) terms; a = df/2 can be large


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        # Even step.
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        # Odd step.
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b})")


def _log_beta_front(a: float, b: float) -> float:
    """ln Γ(a+b) - ln Γ(a) - ln Γ(b), accurate also for a huge ``a`` (many degrees of freedom),
    where the difference of two lgamma values of ~1e10 would lose six digits."""
    if a < 1e5:
        return math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    # ln Γ(a+b)/Γ(a) = b ln a + b(b-1)/(2a) + b(b-1)(b-2)(3b-1)/(24a²) + O(a^-3)
    ratio = (
        b * math.log(a) + b * (b - 1) / (2 * a) + b * (b - 1) * (b - 2) * (3 * b - 1) / (24 * a * a)
    )
    return ratio - math.lgamma(b)


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b) with y = 1 - x passed in (callers can often compute it without cancellation)."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    # log1p of the smaller of x and y keeps a x log(x) exact when x is within 1e-15 of 1.
    log_x = math.log(x) if x < 0.5 else math.log1p(-y)
    log_y = math.log(y) if y < 0.5 else math.log1p(-x)
    front = math.exp(_log_beta_front(a, b) + a * log_x + b * log_y)
    # The fraction converges fast below the mean (a+1)/(a+b+2); above it use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, y) / b


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError("betainc needs a > 0 and b > 0")
    if not 0.0 <= x <= 1.0:
        raise ValueError("betainc needs 0 <= x <= 1")
    return _betainc(a, b, x, 1.0 - x)


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail probability P(|T| > t) of Student's t with ``df`` degrees of freedom."""
    if t <= 0:
        return 1.0
    # P(|T| > t) = I_x(df/2, 1/2) with x = df / (df + t²); 1 - x = t² / (df + t²) exactly.
    s = df + t * t
    return _betainc(df / 2.0, 0.5, df / s, t * t / s)


def _normal_sf2(z: float) -> float:
    """Two-sided tail probability of the standard normal."""
    return math.erfc(z / math.sqrt(2.0))


#: Above this many degrees of freedom the Cornish-Fisher expansion of t around the normal
#: quantile is exact to double precision (next term ~ 1e-20), while the continued fraction, with
#: a = df/2 huge, starts losing digits (1e-11 at df = 1e6, 1e-3 at 1e15).
_ASYMPTOTIC_DF = 1e5


def _bisect_decreasing(tail, alpha: float) -> float:
    """The t with tail(t) = alpha, for a tail probability falling monotonically in t >= 0."""
    lo, hi = 0.0, 2.0
    while tail(hi) > alpha:  # bracket the root
        lo, hi = hi, hi * 2.0
    for _ in range(200):  # to the resolution of a double (about 60 halvings)
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if tail(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@lru_cache(maxsize=4096)
def normal_critical(level: float = 0.95) -> float:
    """Two-sided critical value of the standard normal (1.959964 for 95%)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return _bisect_decreasing(_normal_sf2, 1.0 - level)


@lru_cache(maxsize=4096)
def t_critical(df: float, level: float = 0.95) -> float:
    """Two-sided critical value of Student's t: P(|T| <= t) = ``level``.

    ``df`` >= 1, any real; ``math.inf`` gives the normal quantile (1.959964 for 95%).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df >= _ASYMPTOTIC_DF:
        z = normal_critical(level)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        return z + (g1 + (g2 + g3 / df) / df) / df  # Horner form: no overflow, df = inf works
    return _bisect_decreasing(lambda t: t_sf2(t, df), 1.0 - level)


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
