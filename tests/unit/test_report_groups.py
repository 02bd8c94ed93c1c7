"""Like with like: ranks and ratings within hardware x task groups, group summaries, marks that mean
the same on every chart, whiskers that are clipped rather than dropped, and the batch panels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lembench.report.build import build_site
from lembench.report.charts import Axis, Point, Series, batch_chart, pareto_chart
from lembench.report.data import Stat, collect
from lembench.report.groups import stars, summarise_groups, task_label
from lembench.report.marks import backend_colour, precision_shape, whisker
from lembench.report.pages import batch_panels
from lembench.report.synthetic import config, result, write_run
from lembench.report.table import build_rows
from lembench.report.timeline import timeline_chart

L4 = "NVIDIA L4"


def two_groups(root: Path) -> None:
    """H100 rows (vllm, pytorch at batch 1 and 8) and one L4 row, all measured, 3 cycles each."""
    for backend, batch, hw in (
        ("vllm", 1, "NVIDIA H100 80GB HBM3"),
        ("vllm", 8, "NVIDIA H100 80GB HBM3"),
        ("pytorch", 1, "NVIDIA H100 80GB HBM3"),
        ("llamacpp", 1, L4),
    ):
        for cycle in (1, 2, 3):
            doc, samples = result(config("synthetic/m", backend, "bf16", batch), cycle=cycle,
                                  hardware=hw)  # fmt: skip
            write_run(root, doc, samples)


def test_rows_are_ranked_and_rated_only_within_their_group(tmp_path: Path) -> None:
    two_groups(tmp_path)
    rows = build_rows(collect(tmp_path))
    l4 = [r for r in rows if r.hardware == L4]
    h100 = [r for r in rows if r.hardware != L4]
    # The L4 row is alone in its group: rank 1 there, never ranked among the H100 rows.
    assert [r.rank for r in l4] == [1] and l4[0].rating is None
    assert sorted(r.rank for r in h100) == [1, 2, 3]
    best = min(h100, key=lambda r: r.stat("j_per_output_token").mean)
    assert best.rank == 1 and best.rating == 5
    # Prompt count differs with batch size (8 vs 16 prompts) but the task is the same.
    assert len({r.group for r in h100}) == 1
    summaries = {g.key: g for g in summarise_groups(rows)}
    g = summaries[h100[0].group]
    assert (g.n_rows, g.n_measured) == (3, 3)
    assert g.best_j is not None and g.best_j.value == best.stat("j_per_output_token").mean
    assert [b.value for b in g.front] == [g.best_j.value]  # batch 8 beats both on both axes


def test_site_has_group_summary_selector_and_hover_warnings(tmp_path: Path) -> None:
    two_groups(tmp_path / "r")
    build_site(tmp_path / "r", tmp_path / "site", title="Lab <results>", about="About us.")
    index = (tmp_path / "site" / "index.html").read_text("utf-8")
    assert "Lab &lt;results&gt;" in index and "About us." in index
    assert index.count('<button type="button" class="pick-group"') == 2
    assert 'data-filter="group"' in index and "All rows (not ranked across groups)" in index
    assert index.count('data-group="NVIDIA L4 · synthetic 256-&gt;128"') >= 2  # summary + row
    assert 'class="column-chooser"' in index


@pytest.mark.parametrize(
    ("rank", "k", "expected"),
    [(1, 1, None), (1, 2, 5), (2, 2, 3), (1, 10, 5), (2, 10, 5), (3, 10, 4), (10, 10, 1)],
)
def test_stars_split_a_group_into_fifths_by_rank(rank: int, k: int, expected: int | None) -> None:
    assert stars(rank, k) == expected


def test_task_label_drops_the_prompt_count() -> None:
    a = {"kind": "synthetic", "input_tokens": 32, "output_tokens": 32, "num_prompts": 8}
    assert task_label(a) == task_label({**a, "num_prompts": 64}) == "synthetic 32->32"
    assert task_label({"kind": "jsonl", "path": "/x/y/p.jsonl", "output_tokens": 9}) == (
        "jsonl p.jsonl ->9"
    )


def test_one_colour_per_backend_and_one_shape_per_precision_on_every_chart() -> None:
    assert backend_colour("vllm") == backend_colour("vllm") != backend_colour("pytorch")
    assert backend_colour("some-plugin") == backend_colour("some-plugin")  # stable, no state
    assert precision_shape("fp32") == "square" and precision_shape("int4") == "diamond"
    pts = [
        Point(10, 1.0, "a", "a.html", "vllm", precision="fp8"),
        Point(20, 0.5, "b", "b.html", "pytorch", precision="bf16"),
    ]
    pareto = str(pareto_chart(pts))
    series = [
        Series("vllm fp8", [(1.0, Stat(1.0), "a"), (4.0, Stat(0.5), "b")], backend="vllm",
               precision="fp8"),
    ]  # fmt: skip
    batch = str(batch_chart(series, "t", "batch-0"))
    vllm = backend_colour("vllm")
    assert f'fill="{vllm}"' in pareto and f'stroke="{vllm}"' in batch
    assert "<polygon" in pareto and "<polygon" in batch  # fp8 is a triangle on both


def test_a_quantised_model_is_shaped_by_its_stored_format_not_its_precision(tmp_path) -> None:
    """A Q4 GGUF and an AWQ model compute in 16 bits but store 4-bit weights: their marks are the
    4-bit diamond, and their series say both formats (the old rule drew them as 16-bit circles)."""
    awq = [{**config("synthetic/m", "vllm", "fp16", b), "vllm": {"quantization": "awq"}}
           for b in (1, 4)]  # fmt: skip
    for cfg in (*awq, config("synthetic/m-Q4_K_M.gguf", "llamacpp", "fp16", 1),
                config("synthetic/m", "vllm", "bf16", 1)):  # fmt: skip
        write_run(tmp_path, *result(cfg))
    rows = {(r.backend, r.precision, r.batch_size): r for r in build_rows(collect(tmp_path))}
    assert rows[("vllm", "fp16", 1)].mark == rows[("vllm", "fp16", 4)].mark == "awq"
    assert rows[("llamacpp", "fp16", 1)].mark == "gguf:q4_k_m"
    assert rows[("vllm", "bf16", 1)].mark == "bf16"
    assert [precision_shape(r.mark) for r in rows.values()].count("diamond") == 3
    panels, _ = batch_panels(list(rows.values()))
    (chart,) = [p["svg"] for p in panels if p["svg"] is not None]
    assert "vllm fp16 awq" in str(chart) and str(chart).count("<polygon") >= 2  # two diamonds


def test_whiskers_are_clipped_with_a_marker_never_dropped() -> None:
    """The old rule dropped a whisker whose lower bound was <= 0 and still stretched the axis to
    its upper bound; now the axis is scaled on the points and every whisker is drawn."""
    pts = [
        Point(10, 1.0, "a", "a.html", "vllm", y_low=-3.0, y_high=50.0),
        Point(20, 2.0, "b", "b.html", "vllm", y_low=1.95, y_high=2.05),
    ]
    svg = str(pareto_chart(pts))
    assert svg.count('class="ci"') == 2
    assert svg.count('class="clip"') == 2  # both ends of the first whisker leave the plot
    ticks = [float(t) for t in re.findall(r'class="tick"[^>]*dy="0.32em">([\d.]+)<', svg)]
    assert max(ticks) < 10  # not stretched towards 50


def test_whisker_inside_the_axis_has_no_clip_marker() -> None:
    axis = Axis(0.0, 10.0, 300.0, 20.0)
    assert "clip" not in whisker(axis, 5.0, 2.0, 3.0, "#000")
    assert whisker(axis, 5.0, None, 3.0, "#000") == ""
    log = Axis(0.1, 10.0, 300.0, 20.0, log=True)
    assert whisker(log, 5.0, -1.0, 3.0, "#000").count('class="clip"') == 1


def test_batch_panels_group_by_everything_but_batch_and_prompt_count(tmp_path: Path) -> None:
    two_groups(tmp_path)
    panels, left_out = batch_panels(build_rows(collect(tmp_path)))
    assert left_out == 0
    charts = [p for p in panels if p["svg"] is not None]
    singles = [p for p in panels if p["svg"] is None]
    # vllm at batch 1 and 8 (8 and 16 prompts) share one H100 chart with pytorch's point;
    # the L4 row is the only point of its combination: a table row.
    assert len(charts) == 1 and len(singles) == 1 and singles[0]["row"].hardware == L4


def test_estimated_energy_without_timeline_draws_its_estimated_power() -> None:
    svg = str(timeline_chart([], [(0.0, 0.1, 1.0)], 1.0, 5.0, estimated_power_w=30.0,
                             method="estimate_codecarbon"))  # fmt: skip
    assert 'class="estimated-power"' in svg and "estimate_codecarbon gives no power timeline" in svg
    measured = str(timeline_chart([], [(0.0, 0.1, 1.0)], 1.0, 5.0))
    assert "estimated-power" not in measured and "gives no power timeline" in measured


def test_one_pareto_chart_per_group(tmp_path: Path) -> None:
    two_groups(tmp_path / "r")
    build_site(tmp_path / "r", tmp_path / "site")
    for page in ("index.html", "charts.html"):
        html = (tmp_path / "site" / page).read_text("utf-8")
        assert html.count('<figure class="group-chart"') == 2
        # The L4 experiment is drawn only in the L4 group's chart, never on the H100 front.
        h100 = html.split('id="pareto-0"')[1].split("</svg>")[0]
        assert "NVIDIA L4" not in h100
