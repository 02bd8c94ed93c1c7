"""SVG charts: the Pareto front, axes, power from a cumulative energy timeline, escaping."""

from __future__ import annotations

import re

import pytest

from lembench.report.charts import (
    Axis,
    Point,
    Series,
    batch_chart,
    fmt_num,
    pareto_chart,
    pareto_front,
)
from lembench.report.data import Stat, request_batches
from lembench.report.timeline import power_series, timeline_chart

XSS = "<img src=x onerror=alert(1)>"


def point(x: float, y: float, label: str = "p", estimate: bool = False) -> Point:
    return Point(x=x, y=y, label=label, href=f"experiments/{label}.html", group="vllm",
                 estimate=estimate)  # fmt: skip


def test_pareto_front_keeps_only_undominated_measured_points() -> None:
    pts = [
        point(10, 1.0, "a"),
        point(20, 2.0, "b"),
        point(15, 3.0, "dominated"),  # b is faster and cheaper
        point(5, 0.5, "c"),
        point(100, 0.1, "estimate", estimate=True),  # would dominate all: estimates never count
    ]
    assert [p.label for p in pareto_front(pts)] == ["c", "a", "b"]


def test_pareto_chart_draws_marks_links_front_and_escapes_labels() -> None:
    svg = str(pareto_chart([point(10, 1.0, XSS), point(20, 2.0, "b"), point(5, 3, "e", True)]))
    assert svg.startswith('<svg class="chart"') and svg.endswith("</svg>")
    assert svg.count('class="mark"') == 2 and svg.count('class="mark estimate"') == 1
    # A hollow estimate mark still takes clicks inside its ring, not only on it.
    assert svg.count('pointer-events="visible"') == 1
    assert 'class="front"' in svg
    assert XSS not in svg and "&lt;img src=x onerror=alert(1)&gt;" in svg
    assert "xmlns" not in svg and "http" not in svg
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg


def test_empty_charts_say_so_instead_of_drawing_nothing() -> None:
    assert "No experiment" in str(pareto_chart([]))
    assert "No energy" in str(batch_chart([], "t", "b"))
    assert "No timeline" in str(timeline_chart([], [], None))


def test_axis_picks_log_scale_for_wide_ranges_and_round_ticks() -> None:
    wide = Axis.fit([0.01, 10.0], 0, 100)
    assert wide.log and wide(0.01) < wide(1.0) < wide(10.0)
    assert 0.1 in wide.ticks() and 1.0 in wide.ticks()
    narrow = Axis.fit([2.0, 9.0], 0, 100)
    assert not narrow.log
    assert narrow.ticks() == [2.0, 4.0, 6.0, 8.0]
    assert Axis(0.0, 0.35, 0, 100).ticks() == [0.0, 0.1, 0.2, 0.3]
    flipped = Axis(0.0, 10.0, 300, 20)  # SVG y grows downwards
    assert flipped(0) == 300 and flipped(10) == 20


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0"), (0.00123, "0.00123"), (950, "950"), (1000, "1k"), (2.7e8, "270M")]
)
def test_fmt_num(value: float, text: str) -> None:
    assert fmt_num(value) == text


def test_power_series_is_the_slope_of_cumulative_energy() -> None:
    samples = [
        {"t_s": 0.0, "energy_j": {"gpu": 0.0, "cpu": 0.0}},
        {"t_s": 1.0, "energy_j": {"gpu": 300.0, "cpu": 50.0}},
        {"t_s": 2.0, "energy_j": {"gpu": 400.0, "cpu": 100.0}},
    ]
    series = power_series(samples)
    assert series["gpu"] == [(0.0, 300.0), (1.0, 300.0), (1.0, 100.0), (2.0, 100.0)]
    assert series["total"][0] == (0.0, 350.0)
    decimated = power_series(
        [{"t_s": t / 10, "energy_j": {"gpu": 5.0 * t}} for t in range(1001)], max_points=10
    )
    assert all(p == pytest.approx(50.0) for _, p in decimated["gpu"])  # exact averages
    assert len(decimated["gpu"]) <= 2 * 11


def test_power_series_falls_back_to_instantaneous_power() -> None:
    series = power_series(
        [{"t_s": 0.0, "power_w": {"gpu": 250}}, {"t_s": 0.1, "power_w": {"gpu": 260}}]
    )
    assert series == {"gpu": [(0.0, 250.0), (0.1, 260.0)]}


def test_timeline_chart_shades_prefill_and_decode_from_request_timings() -> None:
    requests = [
        {"batch": 0, "t_start_s": 0.0, "t_first_token_s": 0.2, "t_end_s": 1.0},
        {"batch": 0, "t_start_s": 0.0, "t_first_token_s": 0.25, "t_end_s": 1.1},
        {"batch": 1, "t_start_s": 1.1, "t_first_token_s": 1.3, "t_end_s": 2.0},
    ]
    batches = request_batches(requests)
    assert batches == [(0.0, 0.25, 1.1), (1.1, 1.3, 2.0)]
    samples = [{"t_s": t / 10, "energy_j": {"gpu": 30.0 * t}} for t in range(21)]
    svg = str(timeline_chart(samples, batches, 2.0, idle_power_w=60.0))
    assert svg.count('class="prefill"') == 2 and svg.count('class="decode"') == 2
    assert 'class="mark line"' in svg and 'class="idle"' in svg
    phases_only = str(timeline_chart([], batches, 2.0))
    assert 'class="prefill"' in phases_only and "mark line" not in phases_only


def test_batch_chart_one_line_per_series_with_ci_whiskers() -> None:
    st = Stat(1.0, 0.1, 3, 0.8, 1.2)
    series = [
        Series("vllm bf16", [(1.0, st, "a.html"), (8.0, Stat(0.3, 0.01, 3, 0.28, 0.32), "b.html")]),
        Series("pytorch fp32", [(1.0, Stat(2.0), "c.html")], estimate=True),
    ]
    svg = str(batch_chart(series, "title <b>", "batch-0"))
    assert svg.count("<polyline") == 1  # one point makes no line
    assert len(re.findall(r'class="ci"', svg)) == 2
    assert "(estimate)" in svg and "title &lt;b&gt;" in svg
