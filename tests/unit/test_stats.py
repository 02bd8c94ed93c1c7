"""Percentiles and summaries (linear interpolation, as numpy's default)."""

import pytest

from harness.window.stats import percentile, summarize


def test_percentiles_interpolate_linearly() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 90) == pytest.approx(3.7)


def test_summary_of_samples() -> None:
    s = summarize([3.0, 1.0, 2.0])
    assert s == {
        "n": 3,
        "mean": 2.0,
        "p50": 2.0,
        "p90": pytest.approx(2.8),
        "p99": pytest.approx(2.98),
        "min": 1.0,
        "max": 3.0,
    }


def test_empty_summary_is_all_none() -> None:
    s = summarize([])
    assert s["n"] == 0 and all(v is None for k, v in s.items() if k != "n")
    with pytest.raises(ValueError):
        percentile([], 50)
