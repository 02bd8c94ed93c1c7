"""Template contexts: leaderboard cells, chart inputs and the per-experiment page."""

from __future__ import annotations

import html
import json
import re
import shlex
from collections import defaultdict
from typing import Any

import yaml
from markupsafe import Markup

from harness.contract.definitions import METRIC_DEFINITIONS
from harness.contract.timeline_file import read_timeline
from lembench.report import charts
from lembench.report.data import Experiment, RunInfo, number, text
from lembench.report.fmt import esc, sort_key, stat_html, stat_title, value
from lembench.report.quality import QUALITY_KEYS, absent_cell, absent_reason, quality_context
from lembench.report.table import COLUMNS, Column, Row
from lembench.report.timeline import timeline_chart
from lembench.results.aggregate import METRICS
from lembench.suite.defaults import required_version

try:  # libyaml's dumper is ~10x faster; pages are rendered by the thousand
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]

SUITE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: Suite measurement settings a reproduction snippet may carry (v1 keys, then v2-only keys).
MEASUREMENT_V1 = ("meters", "country_iso_code", "region")
MEASUREMENT_V2 = ("idle_baseline_s", "baseline_cache_s", "timeline_interval_s", "cv_threshold")

BADGE_ESTIMATE = Markup(
    '<span class="badge estimate" title="energy modelled, not measured">estimate</span>'
)


STARS = {n: "★" * n + "☆" * (5 - n) for n in range(1, 6)}


def params_text(n: int | None) -> str:
    """A parameter count as people write it: 135M, 8.03B."""
    if n is None:
        return "–"
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.3g}{suffix}"
    return str(n)


def slug(s: str) -> str:
    """A file-name-safe form of an untrusted string."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip(".-")[:60]
    return out or "x"


def assign_pages(experiments: list[Experiment]) -> None:
    """Give each experiment a unique page path ``experiments/<suite>--<id>.html``."""
    used: set[str] = set()
    for exp in experiments:
        base = f"{slug(exp.suite)}--{slug(exp.experiment_id)}"
        name, i = base, 1
        while name.lower() in used:  # case-insensitive file systems
            i += 1
            name = f"{base}-{i}"
        used.add(name.lower())
        exp.page = f"experiments/{name}.html"


def _td(html: str, sort: str | None = None, cls: str = "", title: str = "") -> str:
    """A cell; ``html`` is already safe, ``title`` is escaped here."""
    attrs = "" if sort is None else f' data-v="{sort}"'
    attrs += f' class="{cls}"' if cls else ""
    attrs += f' title="{esc(title)}"' if title else ""
    return f"<td{attrs}>{html}</td>"


def row_html(row: Row, columns: tuple[Column, ...] = COLUMNS) -> Markup:
    """One leaderboard ``<tr>``, cells in ``columns`` order.

    Built here rather than by a jinja loop over cells: a 10k-row site has 200k cells and the
    template loop alone took seconds. Every user-supplied string goes through ``escape``;
    everything else is a number we formatted or a constant.
    """
    e = esc
    cells: list[str] = []
    for col in columns:
        key = col.key
        if key in QUALITY_KEYS and (why := absent_reason(row, key)) is not None:
            cells.append(absent_cell(why))  # not scored, or nothing solved: say which
        elif col.kind == "metric":
            st = row.stat(key)
            # The whole-system figure of a mixed row includes modelled components: say so.
            badge = (
                f" {BADGE_ESTIMATE}"
                if key == "j_per_output_token_system"
                and st.mean is not None
                and row.summary.get("system_is_estimate")
                else ""
            )
            cells.append(
                _td(
                    stat_html(st, col.fmt, col.ci) + badge,
                    sort_key(st.mean),
                    "num",
                    stat_title(st, col.fmt),
                )
            )
        elif key == "rank":
            if row.rank:
                html = str(row.rank)
            else:
                html = BADGE_ESTIMATE if row.energy_class == "estimate" else "–"
            cells.append(_td(html, sort_key(row.rank), "num rank", f"in {row.group}"))
        elif key == "rating":
            if row.rating:
                html = (
                    f'<span class="stars" aria-label="{row.rating} of 5">{STARS[row.rating]}</span>'
                )
                tip = f"{row.rating} of 5 stars within {row.group}"
            else:
                html, tip = "–", "not rated (estimate, no energy, or alone in its group)"
            cells.append(_td(html, sort_key(row.rating), "num rating", tip))
        elif key == "params":
            cells.append(_td(params_text(row.params), sort_key(row.params), "num"))
        elif key == "model":
            model = e(row.model)
            cells.append(
                f'<th scope="row" title="{model}"><a href="{e(row.exp.page)}">{model}</a></th>'
            )
        elif key == "batch_size":
            b = row.batch_size
            cells.append(_td("–" if b is None else str(b), sort_key(b), "num"))
        elif key == "cycles":
            failed = f' <span class="failed">({row.n_failed} failed)</span>' if row.n_failed else ""
            cells.append(_td(f"{row.n_ok}{failed}", sort_key(row.n_ok), "num"))
        elif key == "energy_method":
            badge = f" {BADGE_ESTIMATE}" if row.energy_class == "estimate" else ""
            s = row.summary
            if s.get("energy_scope") == "measured" and s.get("system_is_estimate"):
                # Mixed: the ranked figure is the measured part; the rest is modelled.
                whole = e(text(s.get("system_method")))
                badge = f" (ranked); whole system {whole} {BADGE_ESTIMATE}"
            cells.append(_td(f"{e(row.energy_method or '–')}{badge}"))
        elif key == "warnings":
            if row.warnings:
                # An icon with the codes on hover (and for screen readers): a column of codes
                # wrapped every row onto several lines.
                codes = e(", ".join(row.warnings))
                html = (
                    f'<span class="badge warn" title="{codes}" aria-label="warnings: {codes}">'
                    f"⚠ {len(row.warnings)}</span>"
                )
                cells.append(_td(html, sort_key(len(row.warnings)), "warnings"))
            else:
                cells.append(_td("", sort_key(0)))
        else:
            cells.append(_td(e(str(getattr(row, key)))))
    data = (
        f' data-model="{e(row.model)}" data-backend="{e(row.backend)}"'
        f' data-precision="{e(row.precision)}" data-hardware="{e(row.hardware)}"'
        f' data-variant="{e(row.variant)}" data-group="{e(row.group)}"'
        f' data-suite="{e(row.exp.suite)}"'
    )
    warn = ' class="has-warnings"' if row.warnings else ""
    return Markup(f"<tr{data}{warn}>{''.join(cells)}</tr>")


def pareto_points(rows: list[Row], root: str = "") -> list[charts.Point]:
    """Chart input: experiments with an energy and a throughput figure."""
    points = []
    for row in rows:
        j, tput = row.stat("j_per_output_token"), row.stat("throughput_out_tok_s")
        if row.energy_class == "none" or j.mean is None or tput.mean is None:
            continue
        points.append(
            charts.Point(
                x=tput.mean,
                y=j.mean,
                label=f"{row.model} · {row.backend} · {row.precision} · batch {row.batch_size}"
                f" · {row.hardware}",
                href=root + row.exp.page,
                group=row.backend,
                estimate=row.energy_class == "estimate",
                precision=row.mark or row.precision,
                y_low=j.low,
                y_high=j.high,
            )
        )
    return points


def _series_key(row: Row) -> tuple[str, str, str, bool]:
    return (row.backend, row.precision, row.mark, row.energy_class == "estimate")


def _format_label(row: Row) -> str:
    """A series' format in its legend: the precision, and the stored format when it differs
    (``fp16 awq``, ``fp32 gguf:q4_1``)."""
    if row.mark and row.mark != row.precision:
        return f"{row.precision} {row.mark}"
    return row.precision


def _new_series(row: Row) -> charts.Series:
    estimate = row.energy_class == "estimate"
    return charts.Series(
        f"{row.backend} {_format_label(row)}", estimate=estimate, backend=row.backend,
        precision=row.mark or row.precision,
    )  # fmt: skip


def batch_panels(rows: list[Row], limit: int = 24) -> tuple[list[dict[str, Any]], int]:
    """Energy vs batch size: one panel per everything but the batch size and the prompt count
    (model, hardware, task, variant), one series per backend and precision (estimates as their
    own dashed series). A panel with a single point is no chart: it comes back with ``svg`` None
    and its one ``row`` (the page shows it as a table row). Returns (panels, panels left out)."""
    groups: dict[tuple[str, str, str, str], dict[tuple[str, str, bool], charts.Series]] = (
        defaultdict(dict)
    )
    only: dict[tuple[str, str, str, str], Row] = {}
    for row in rows:
        st = row.stat("j_per_output_token")
        if row.energy_class == "none" or st.mean is None or row.batch_size is None:
            continue
        key = (row.model, row.hardware, row.task, row.variant)
        series = groups[key].setdefault(_series_key(row), _new_series(row))
        series.points.append((float(row.batch_size), st, row.exp.page))
        only[key] = row
    ranked = sorted(groups.items(), key=lambda kv: -sum(len(s.points) for s in kv[1].values()))
    panels = []
    for i, ((model, hardware, task, variant), series) in enumerate(ranked[:limit]):
        title = f"{model} on {hardware} ({task}{'; ' + variant if variant else ''})"
        if sum(len(s.points) for s in series.values()) == 1:
            row = only[(model, hardware, task, variant)]
            panels.append({"title": title, "svg": None, "row": row})
            continue
        svg = charts.batch_chart(list(series.values()), title, f"batch-{i}")
        panels.append({"title": title, "svg": svg, "row": None})
    return panels, max(0, len(ranked) - limit)


def tradeoff_panels(rows: list[Row], limit: int = 12) -> list[dict[str, Any]]:
    """ML.ENERGY's time-energy trade-off: per model, hardware and task, J/output token against
    the median inter-token latency, one line per backend and precision over its batch sizes
    (hover names the batch). Panels with fewer than two points are left out (no trade-off)."""
    groups: dict[tuple[str, str, str], dict[tuple[str, str, str, bool], charts.Series]] = (
        defaultdict(dict)
    )
    for row in rows:
        st, itl = row.stat("j_per_output_token"), row.stat("itl_p50_s").mean
        if row.energy_class == "none" or st.mean is None or itl is None or itl <= 0:
            continue
        series = groups[(row.model, row.hardware, row.task)].setdefault(
            _series_key(row), _new_series(row)
        )
        note = f", batch {row.batch_size}" + (f", {row.variant}" if row.variant else "")
        series.points.append((itl * 1000.0, st, row.exp.page, note))
    ranked = sorted(groups.items(), key=lambda kv: -sum(len(s.points) for s in kv[1].values()))
    panels = []
    for i, ((model, hardware, task), series) in enumerate(ranked):
        if sum(len(s.points) for s in series.values()) < 2 or len(panels) >= limit:
            continue
        title = f"{model} on {hardware} ({task})"
        svg = charts.batch_chart(
            list(series.values()), title, f"tradeoff-{i}", "inter-token latency p50 (ms)", "ITL ms"
        )
        panels.append({"title": title, "svg": svg})
    return panels


def _idle_power(run: RunInfo) -> float | None:
    idle = run.numbers.get("idle_power_w")
    if idle is None and run.baseline:
        power = run.baseline.get("power_w")
        if isinstance(power, dict):
            vals = [v for v in map(number, power.values()) if v is not None]
            idle = sum(vals) if vals else None
    return idle


def timeline_for(exp: Experiment) -> tuple[Markup, RunInfo | None, bool]:
    """The power timeline chart of the first successful run with a timeline (else the request
    phases of the first successful run). Returns (svg, run shown, has a power timeline)."""
    ok = exp.ok_runs
    for run in ok:
        if run.timeline_file is not None and run.timeline_file.is_file():
            samples = read_timeline(run.timeline_file)
            if samples:
                svg = timeline_chart(
                    samples,
                    run.batches,
                    run.numbers.get("duration_s"),
                    _idle_power(run),
                    title=f"Power over the measured window (cycle {run.cycle})",
                )
                return svg, run, True
    if ok:
        run = ok[0]
        svg = timeline_chart(
            [], run.batches, run.numbers.get("duration_s"), _idle_power(run),
            title=f"Request phases over the measured window (cycle {run.cycle})",
            estimated_power_w=run.numbers.get("avg_power_w") if run.is_estimate else None,
            method=run.energy_method,
        )  # fmt: skip
        return svg, run, False
    return Markup(""), None, False


def reproduce(exp: Experiment) -> dict[str, Any]:
    """The command that re-runs this experiment and the config as a one-experiment suite."""
    controller = exp.provenance.get("controller") if isinstance(exp.provenance, dict) else None
    controller = controller if isinstance(controller, dict) else {}
    suite_file = text(controller.get("suite_file")) or None
    measurement = exp.provenance.get("measurement")
    requested = measurement.get("requested") if isinstance(measurement, dict) else None
    requested = requested if isinstance(requested, dict) else {}
    settings = {k: requested[k] for k in (*MEASUREMENT_V1, *MEASUREMENT_V2) if k in requested}
    v2 = any(k in settings for k in MEASUREMENT_V2)
    needed = required_version(exp.config) if isinstance(exp.config, dict) else 1
    doc: dict[str, Any] = {
        "schema_version": max(needed, 2 if v2 else 1),
        "name": exp.suite if SUITE_NAME.match(exp.suite) else "reproduce",
    }
    if exp.cycles:
        doc["cycles"] = exp.cycles
    if settings:
        doc["measurement"] = settings
    doc["experiment"] = exp.config
    return {
        "command": f"lembench run {shlex.quote(suite_file)}" if suite_file else None,
        "recorded": text(controller.get("command")) or None,
        "git_commit": controller.get("git_commit"),
        "git_dirty": controller.get("git_dirty"),
        "suite_sha256": controller.get("suite_sha256"),
        "snippet": dump_yaml(doc),
    }


#: Strings YAML reads back as themselves without quotes (no leading digit, dot, dash or
#: indicator; no ': ' or ' #'), unless they spell a YAML 1.1 bool/null.
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./+-]*$")
_RESERVED = frozenset(["y", "n", "yes", "no", "true", "false", "on", "off", "null"])


def _yaml_scalar(v: Any) -> str:
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, int | float):
        return json.dumps(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s, ensure_ascii=False)  # JSON escapes are valid YAML double-quoted ones


def _yaml_lines(obj: Any, pad: str) -> list[str]:
    lines: list[str] = []
    items = obj.items() if isinstance(obj, dict) else ((None, v) for v in obj)
    for key, v in items:
        head = f"{pad}{_yaml_scalar(key)}:" if isinstance(obj, dict) else f"{pad}-"
        if isinstance(v, dict | list) and v:
            lines.append(head)
            lines += _yaml_lines(v, pad + "  ")
        elif isinstance(v, dict | list):
            lines.append(f"{head} {'{}' if isinstance(v, dict) else '[]'}")
        else:
            lines.append(f"{head} {_yaml_scalar(v)}")
    return lines


def _printable(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(_printable(k) and _printable(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_printable(v) for v in obj)
    return not isinstance(obj, str) or obj.isprintable()


def dump_yaml(obj: dict[str, Any]) -> str:
    """Block-style YAML of JSON data, written directly (PyYAML's emitter costs ~0.3 ms a page, the
    largest share of rendering 10k pages); PyYAML only for strings with unprintable characters."""
    if not _printable(obj):
        return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(_yaml_lines(obj, "")) + "\n"


_PRETTY: dict[str, str] = {}


def dump_json(obj: Any) -> str:
    """Indented JSON (json's indent mode is pure Python: identical snapshots, e.g. one machine's
    environment across experiments, are formatted once)."""
    key = json.dumps(obj, ensure_ascii=False, default=str)
    text = _PRETTY.get(key)
    if text is None:
        if len(_PRETTY) > 4096:
            _PRETTY.clear()
        text = _PRETTY[key] = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    return text


RUN_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tokens_out", "tokens out", "sig"),
    ("duration_s", "window (s)", "sig"),
    ("energy_total_j", "energy gross (J)", "sig"),
    ("energy_net_j", "energy net (J)", "sig"),
    ("j_per_output_token", "J/token gross", "sig"),
    ("j_per_output_token_net", "J/token net", "sig"),
    ("throughput_out_tok_s", "tok/s", "sig"),
    ("ttft_p50_s", "TTFT p50 (ms)", "ms"),
    ("itl_p50_s", "ITL p50 (ms)", "ms"),
    ("avg_power_w", "power (W)", "sig"),
    ("idle_power_w", "idle (W)", "sig"),
    ("energy_prefill_j", "prefill (J)", "sig"),
    ("energy_decode_j", "decode (J)", "sig"),
    ("mfu", "MFU", "pct"),
    ("mbu", "MBU", "pct"),
    ("j_per_request_p50", "J/request p50", "sig"),
    ("j_per_request_p90", "J/request p90", "sig"),
    ("j_per_request_p99", "J/request p99", "sig"),
    ("goodput_fraction", "goodput", "pct"),
    ("j_per_good_output_token", "J/good token", "sig"),
    ("j_per_output_token_steady_state", "J/token steady", "sig"),
)


def unit_of(metric: str) -> str:
    """The unit of a summarised metric: from METRIC_DEFINITIONS, else from its name's suffix."""
    base = metric.replace("_p50", "").replace("_p99", "").replace("e2e_s", "e2e_latency_s")
    base = base.replace("_p90", "")
    if base in METRIC_DEFINITIONS:
        return METRIC_DEFINITIONS[base][0]
    if metric.startswith(("j_per_output_token", "j_per_input_token")):
        return "J/token"
    if metric in ("mfu", "mbu"):
        return "fraction of peak"
    return {"_j": "J", "_w": "W", "_s": "s"}.get(metric[-2:], "")


_UNITS: dict[str, str] = {}


def stats_rows(row: Row) -> Markup:
    """The summary table's rows (metric, unit, mean, std, n, 95% CI) of metrics with values.
    Assembled here, like the leaderboard rows, to keep ~200 template escapes off every page;
    metric names and units are ours, numbers are formatted by us."""
    out = []
    for m in METRICS:
        st = row.stat(m)
        if not st.n:
            continue
        unit = _UNITS.get(m) or _UNITS.setdefault(m, html.escape(unit_of(m)))
        ci = f"{value(st.low)} to {value(st.high)}" if st.low is not None else "–"
        out.append(
            f'<tr><th scope="row"><code>{m}</code></th><td>{unit}</td>'
            f'<td class="num">{value(st.mean)}</td><td class="num">{value(st.std)}</td>'
            f'<td class="num">{st.n}</td><td class="num">{ci}</td></tr>'
        )
    return Markup("\n".join(out))


def run_rows(exp: Experiment) -> Markup:
    """The per-cycle table's rows: one per stored run, its raw numbers in RUN_COLUMNS order."""
    out = []
    for r in exp.runs:
        status = html.escape(r.status) + (f" ({html.escape(r.error)})" if r.error else "")
        method = html.escape(r.energy_method or "–") + (
            f" {BADGE_ESTIMATE}" if r.is_estimate else ""
        )
        numbers = "".join(
            f'<td class="num" data-v="{sort_key(r.numbers.get(k))}">{value(r.numbers.get(k), kind)}'
            "</td>"
            for k, _, kind in RUN_COLUMNS
        )
        cycle = "–" if r.cycle is None else str(r.cycle)
        out.append(
            f'<tr><td class="num" data-v="{sort_key(r.cycle)}">{cycle}</td>'
            f'<th scope="row"><code>{html.escape(r.run_id)}</code></th>'
            f"<td>{status}</td><td>{method}</td>{numbers}"
            f'<td class="num" data-v="{len(r.warnings)}">{len(r.warnings)}</td></tr>'
        )
    return Markup("\n".join(out))


def experiment_context(exp: Experiment, row: Row) -> dict[str, Any]:
    """Everything experiment.html.j2 shows."""
    svg, shown, has_timeline = timeline_for(exp)
    warnings = [(r.cycle, r.run_id, code, msg) for r in exp.runs for code, msg in r.warnings]
    return {
        "exp": exp,
        "row": row,
        "stats": stats_rows(row),
        "runs": run_rows(exp),
        "phases": [(r.cycle, r.phases) for r in exp.runs if r.phases],
        "run_columns": [label for _, label, _ in RUN_COLUMNS],
        "warnings": warnings,
        "errors": [r for r in exp.runs if not r.ok],
        "timeline_svg": svg,
        "timeline_run": shown,
        "has_timeline": has_timeline,
        "reproduce": reproduce(exp),
        "quality": quality_context(exp, row),
        "config_json": dump_json(exp.config),
        "provenance_json": dump_json(exp.provenance),
        "environment_json": dump_json(exp.environment),
    }
