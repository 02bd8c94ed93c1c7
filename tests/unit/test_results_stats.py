"""Student-t critical values (scipy.stats) and confidence intervals, checked against closed forms
and published tables."""

from __future__ import annotations

import math

import pytest

from lembench.results.stats import ci_half_width_pct, cv, mean_ci, normal_critical, t_critical

#: Two-sided 95% critical values from printed t tables (4 decimals).
TABLE = {1: 12.7062, 2: 4.3027, 3: 3.1824, 5: 2.5706, 10: 2.2281, 30: 2.0423, 100: 1.9840}


@pytest.mark.parametrize(("df", "expected"), sorted(TABLE.items()))
def test_t_critical_matches_tables(df: int, expected: float) -> None:
    assert t_critical(df) == pytest.approx(expected, abs=5e-5)


def test_t_critical_closed_forms() -> None:
    # df = 1 is the Cauchy distribution: t = tan(pi (p - 1/2)), p = 0.975.
    assert t_critical(1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-13)
    # df = 2: t = (2p - 1) / sqrt(2 p (1 - p)).
    assert t_critical(2) == pytest.approx(0.95 / math.sqrt(2 * 0.975 * 0.025), rel=1e-13)
    # df = 4: with a = 4 p (1 - p), q = cos(arccos(sqrt a) / 3) / sqrt a, t = 2 sqrt(q - 1).
    a = 4 * 0.975 * 0.025
    q = math.cos(math.acos(math.sqrt(a)) / 3) / math.sqrt(a)
    assert t_critical(4) == pytest.approx(2 * math.sqrt(q - 1), rel=1e-12)


def test_t_critical_large_df_tends_to_the_normal() -> None:
    assert normal_critical() == pytest.approx(1.959963984540054, rel=1e-13)
    assert t_critical(math.inf) == pytest.approx(1.959963984540054, rel=1e-13)
    assert t_critical(10**6) == pytest.approx(1.95996, abs=1e-5)
    values = [t_critical(df) for df in (3, 30, 1000, 10**7)]
    assert values == sorted(values, reverse=True)
    assert t_critical(4, 0.99) == pytest.approx(4.6041, abs=5e-5)


def test_t_critical_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_critical(0)
    with pytest.raises(ValueError, match="level"):
        t_critical(3, 1.0)


def test_mean_ci_by_hand() -> None:
    mean, std, n, low, high = mean_ci([10, 12, 14])
    half = 4.302652729749464 * 2 / math.sqrt(3)
    assert (mean, std, n) == (12.0, 2.0, 3)
    assert low == pytest.approx(12 - half, rel=1e-12)
    assert high == pytest.approx(12 + half, rel=1e-12)


def test_mean_ci_small_and_missing() -> None:
    assert mean_ci([5.0]) == (5.0, None, 1, None, None)
    assert mean_ci([]) == (None, None, 0, None, None)
    # Missing values are not zeros: they are left out and not counted.
    assert mean_ci([None, 4.0, float("nan"), 6.0])[:3] == (5.0, math.sqrt(2), 2)
    # No spread: a zero-width interval.
    assert mean_ci([3.0, 3.0, 3.0])[3:] == (3.0, 3.0)


def test_coefficient_of_variation() -> None:
    assert cv([10, 12, 14]) == pytest.approx(2 / 12)
    assert cv([-10, -12, -14]) == pytest.approx(2 / 12)
    assert cv([1.0]) is None
    assert cv([-1.0, 1.0]) is None


def test_ci_half_width_pct_is_the_convergence_criterion() -> None:
    half = 4.302652729749464 * 2 / math.sqrt(3)
    assert ci_half_width_pct([10, 12, 14]) == pytest.approx(100 * half / 12)
    assert ci_half_width_pct([5.0]) is None and ci_half_width_pct([-1.0, 1.0]) is None
    assert ci_half_width_pct([3.0, 3.0, 3.0]) == 0.0
