"""One reader of the aggregation's summary columns (lembench.results.summary), used by the report,
the advice, reproduce and the console tables alike."""

from __future__ import annotations

import math

from lembench.advice import data as advice_data
from lembench.report import data as report_data
from lembench.results.summary import Stat, stat_of


def test_stat_of_reads_the_summary_columns_and_drops_what_is_not_a_number() -> None:
    row = {"x_mean": 2.0, "x_std": math.nan, "x_n": 3, "x_ci95_low": 1.5, "x_ci95_high": 2.5}
    assert stat_of(row, "x") == Stat(2.0, None, 3, 1.5, 2.5)
    stat = stat_of(row, "x")
    assert stat.half_width == 0.5 and stat.rel_half_width == 0.25
    assert stat_of({"x_mean": math.inf, "x_n": True}, "x") == Stat(None, None, 0, None, None)
    assert stat_of({}, "missing") == Stat(None)


def test_intervals_overlap_only_when_both_exist() -> None:
    a, b, c = Stat(1.0, None, 3, 0.5, 1.5), Stat(2.0, None, 3, 1.4, 2.6), Stat(5.0, None, 3, 4, 6)
    assert a.overlaps(b) is True and a.overlaps(c) is False
    assert a.overlaps(Stat(1.0, None, 1)) is None


def test_report_and_advice_use_the_same_stat() -> None:
    assert report_data.Stat is Stat and advice_data.Stat is Stat
