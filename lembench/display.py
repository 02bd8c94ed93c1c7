"""Terminal output: tables of grids, runs and summaries (live progress: lembench.progress)."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table

from lembench.plan import group_experiments
from lembench.results.aggregate import ci_half_width, model_label, workload_label
from lembench.results.environment import environment_key, hardware_label
from lembench.store import StoredRun
from lembench.suite import Suite

ESTIMATE = "[yellow]estimate[/yellow]"


def fmt(x: float | None, spec: str = ".3g") -> str:
    """A number for a table cell; '-' for missing."""
    return "-" if x is None else format(x, spec)


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def method_label(method: str | None, is_estimate: bool | None) -> str:
    """Energy method for a table; estimates are marked so they are never read as measurements."""
    if not method:
        return "-"
    return f"{escape(method)} ({ESTIMATE})" if is_estimate else escape(method)


def system_label(row: dict[str, Any], key: str = "j_per_output_token_system_mean") -> str:
    """The whole-system J/token shown beside a ranked measured one (mixed measured + estimated
    runs, e.g. NVML GPU + codecarbon CPU/DRAM), labelled an estimate; '' otherwise."""
    if row.get("energy_scope") != "measured" or not row.get("system_is_estimate"):
        return ""
    value = row.get(key)
    if value is None:
        return ""
    return f"{fmt(value)} whole system ({ESTIMATE})"


def convergence_label(row: dict[str, Any]) -> str:
    """A summary row's convergence state, e.g. ``converged ±3.1%`` or ``max_cycles ±7.2%``
    (cycles: {min, max, until_ci_pct}); the state is yellow unless converged."""
    state = str(row.get("convergence"))
    pct = row.get("convergence_ci_pct")
    text = state + ("" if pct is None else f" ±{pct:.2g}%")
    return text if state == "converged" else f"[yellow]{escape(text)}[/yellow]"


DUMMY = "[yellow](dummy weights)[/yellow]"


def model_cell(model: str, dummy: bool) -> str:
    """A model's table cell; random (dummy) weights are said, never shown as the real model."""
    return escape(model) + (f" {DUMMY}" if dummy else "")


def _is_dummy(variant: str | None) -> bool:
    return "dummy weights" in (variant or "")


def grid_table(suite: Suite) -> Table:
    """The expanded grid of a suite (``lembench validate``)."""
    groups = group_experiments(suite)
    group_of = {e.experiment_id: g for g, exps in groups.items() for e in exps}
    table = Table(title=f"suite {suite.name}: {len(suite.experiments)} experiments")
    for col in (
        "id",
        "load group",
        "backend",
        "model",
        "precision",
        "device",
        "batch",
        "workload",
        "sweep",
    ):
        table.add_column(col)
    for e in suite.experiments:
        c = e.config
        sweep = ", ".join(f"{k}={json.dumps(v)}" for k, v in e.sweep_values.items())
        table.add_row(
            e.experiment_id,
            group_of[e.experiment_id],
            c["backend"],
            model_cell(model_label(c["model"]), c.get("weights") == "dummy"),
            c["precision"],
            c["device"],
            str(c["batch_size"]),
            escape(workload_label(c["workload"])),
            escape(sweep),
        )
    return table


#: Terminal tables are laid out for this many columns (cells fold, ids never do).
TABLE_WIDTH = 100
#: What "±" means in every terminal table, said in its caption.
PLUS_MINUS = "± = half-width of the 95% confidence interval over cycles"
#: Swept keys rows are sorted by (not the experiment hash).
SORT_KEYS = ("model", "backend", "precision", "variant", "batch_size", "workload")


def fmt_ci(row: dict[str, Any], metric: str, spec: str = ".3g") -> str:
    """``mean ± half-width`` of the 95% CI of ``metric`` in a summary row (no ± with one run)."""
    mean = row.get(f"{metric}_mean")
    if mean is None:
        return "-"
    half = ci_half_width(row, metric)
    return fmt(mean, spec) + (f" ± {half:.2g}" if half is not None else "")


def sort_swept(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in the order of the swept keys (model, backend, precision, workload, batch)."""
    keys = [k for k in SORT_KEYS if k in frame.columns]
    return frame.sort(keys, nulls_last=True, maintain_order=True) if keys else frame


def short_method(method: str | None, is_estimate: bool | None) -> str:
    """A narrow energy-method cell: ``nvml_counter``, ``codecarbon est.`` (estimates marked)."""
    if not method:
        return "-"
    name = escape(method.removeprefix("estimate_"))
    return f"{name} [yellow]est.[/yellow]" if is_estimate else name


def short_workload(label: str | None) -> str:
    """``256->128 x8`` for ``synthetic 256->128 x8`` (other kinds keep their name)."""
    return escape((label or "-").removeprefix("synthetic "))


def summary_table(summary: pl.DataFrame, title: str) -> RenderableType:
    """One row per experiment with mean ± the 95% CI half-width over cycles, sorted by the swept
    keys, laid out for 100 columns; experiment ids shortened to the shortest unique prefix
    (``results show`` takes it). TTFT and FLOPs are in ``results show`` and the report. Scored
    (HumanEval) experiments get a second table below: pass@1 and J per solved task."""
    from lembench.advice.data import short_ids

    summary = sort_swept(summary)
    short = short_ids(summary["experiment_id"].to_list()) if summary.height else {}
    table = Table(title=title, caption=PLUS_MINUS + "; ITL: median inter-token latency")
    # HumanEval experiments are scored: their pass@1 and J per solved task get columns.
    scored = "pass_at_1_n" in summary.columns and bool(summary["pass_at_1_n"].sum())
    table.add_column("exp.", no_wrap=True)
    table.add_column("model", overflow="fold", min_width=8, ratio=3)
    table.add_column("backend prec", overflow="fold", min_width=8, ratio=2)
    table.add_column("batch", justify="right", no_wrap=True)
    table.add_column("workload", overflow="fold", min_width=6, ratio=2)
    table.add_column("J/out tok ±", justify="right", overflow="fold", min_width=7, ratio=2)
    table.add_column("tok/s ±", justify="right", overflow="fold", min_width=7, ratio=2)
    table.add_column("ITL ms", justify="right", no_wrap=True)
    table.add_column("energy", overflow="fold", min_width=6, ratio=2)
    table.add_column("runs", justify="right", overflow="fold")
    for row in summary.iter_rows(named=True):
        runs = f"{row['n_ok']}"
        if row["n_failed"]:
            runs += f" [red]+{row['n_failed']} failed ({escape(row['errors'] or '')})[/red]"
        if row.get("convergence"):
            runs += f" ({convergence_label(row)})"
        table.add_row(
            short.get(row["experiment_id"], row["experiment_id"]),
            model_cell(row["model"], _is_dummy(row.get("variant"))),
            f"{escape(row['backend'])} {escape(row['precision'])}",
            str(row["batch_size"]),
            short_workload(row["workload"]),
            fmt_ci(row, "j_per_output_token"),
            fmt_ci(row, "throughput_out_tok_s", ".3g"),
            fmt_ms(row["itl_p50_s_mean"]),
            short_method(row["energy_method"], row["energy_is_estimate"])
            + (f"; {system}" if (system := system_label(row)) else ""),
            runs,
        )
    if not scored:
        return table
    # Two more columns would not fit in 100: the quality figures get their own table.
    quality = Table(title="scored experiments")
    quality.add_column("exp.", no_wrap=True)
    quality.add_column("pass@1 ±", justify="right", no_wrap=True)
    quality.add_column("J/solved task ±", justify="right", no_wrap=True)
    for row in summary.iter_rows(named=True):
        if row.get("pass_at_1_n"):
            quality.add_row(
                short.get(row["experiment_id"], row["experiment_id"]),
                fmt_ci(row, "pass_at_1", ".3f"),
                fmt_ci(row, "j_per_solved_task"),
            )
    return Group(table, quality)


def runs_table(frame: pl.DataFrame) -> Table:
    """One row per stored run (``lembench results list``), sorted by suite, the swept keys and
    cycle; run ids in full (never cut: they are what ``results show`` takes)."""
    from lembench.advice.data import short_ids

    keys = [k for k in ("suite", *SORT_KEYS, "cycle") if k in frame.columns]
    frame = frame.sort(keys, nulls_last=True, maintain_order=True) if keys else frame
    short = short_ids(frame["experiment_id"].to_list()) if frame.height else {}
    suites = frame["suite"].unique().to_list() if frame.height else []
    many = len(suites) > 1
    title = f"{frame.height} stored runs" + ("" if many else f" of suite {escape(suites[0])}")
    table = Table(title=title if frame.height else "no stored runs")
    table.add_column("run id", no_wrap=True)
    if many:
        table.add_column("suite", overflow="fold", min_width=8, ratio=2)
    table.add_column("exp.", no_wrap=True)  # the shortest unique id prefix
    # No cycle column: a run id ends in its cycle (``-c2``).
    table.add_column("model", overflow="fold", min_width=8, ratio=3)
    table.add_column("batch", justify="right", no_wrap=True)
    table.add_column("J/out tok", justify="right", overflow="fold", min_width=6, ratio=2)
    table.add_column("energy", overflow="fold", min_width=6, ratio=2)
    table.add_column("tok/s", justify="right", no_wrap=True)
    for r in frame.iter_rows(named=True):
        # A failed run shows its reason where its energy would be.
        ok = r["status"] == "ok"
        energy = (
            fmt(r["j_per_output_token"]) if ok else f"[red]failed: {escape(str(r['error']))}[/red]"
        )
        table.add_row(
            r["run_id"],
            *([escape(r["suite"])] if many else []),
            short.get(r["experiment_id"], r["experiment_id"]),
            model_cell(r["model"], _is_dummy(r.get("variant"))),
            str(r["batch_size"]),
            energy,
            short_method(r["energy_method"], r["energy_is_estimate"])
            + (f"; {system}" if (system := system_label(r, "j_per_output_token_system")) else ""),
            fmt(r["throughput_out_tok_s"], ".3g"),
        )
    return table


def show_run(console: Console, run: StoredRun) -> None:
    """Details of one stored run (``lembench results show``). v1 results show their v2 fields as
    not recorded (the store upgrades them on read)."""
    r = run.result
    console.print(
        f"[bold]run[/bold] {r['run_id']}  [bold]experiment[/bold] {r['experiment_id']}  "
        f"suite {escape(r['suite'])}  cycle {r['cycle']}/{r['cycles']}"
    )
    console.print(f"path: {run.path}")
    console.print(f"status: {r['status']}  started {r['started_at']}  ended {r['ended_at']}")
    if r.get("error"):
        e = r["error"]
        console.print(f"[red]error[/red] {e['reason']}: {escape(e['message'])}")
    if r.get("environment"):
        console.print(
            f"hardware: {escape(hardware_label(r) or '-')}  environment {environment_key(r)}"
        )
    threads = ((r.get("provenance") or {}).get("measurement") or {}).get("threads")
    if threads:
        console.print(
            f"CPU threads: {threads['count']} (from {threads['source'].replace('_', ' ')}; "
            f"{threads['allowed_cpus']} CPUs allowed)"
        )
    console.print("[bold]config[/bold]")
    console.print_json(json.dumps(r["config"]))
    if r.get("metrics"):
        console.print(_run_metrics_table(r))
    energy = r.get("energy") or {}
    if energy.get("baseline"):
        b = energy["baseline"]
        power = ", ".join(f"{d} {w:.4g} W" for d, w in sorted(b["power_w"].items()))
        console.print(
            f"idle baseline: {escape(power)} over {b['duration_s']:.3g} s "
            f"({escape(b['method'])}{', ' + ESTIMATE if b['is_estimate'] else ''}"
            f"{', cached' if b['cached'] else ''}, measured {b['measured_at']}"
            + (
                f"; {b['windows']} windows, mean known to {b['power_rel_se']:.1%}"
                if b.get("windows") and b.get("power_rel_se") is not None
                else ""
            )
            + ")"
        )
    if energy.get("phases"):
        ph = energy["phases"]
        closure = {True: "ok", False: "[red]failed[/red]"}.get(
            ph["closure_ok"], "n/a: time share, adds up by construction"
        )
        console.print(
            f"phases ({escape(ph['method'])}): prefill {ph['prefill_j']:.4g} J, decode "
            f"{ph['decode_j']:.4g} J, other {ph['other_j']:.4g} J, idle {ph['idle_j']:.4g} J "
            f"of {ph['total_j']:.4g} J (closure {closure}, error {ph['closure_rel_error']:.2%})"
        )
    if r.get("quality"):
        console.print(quality_line(r["quality"]))
    if r.get("timeline"):
        t = r["timeline"]
        console.print(
            f"timeline: {escape(t['file'])}, {t['samples']} samples every {t['interval_s']} s"
        )
    for w in r.get("warnings") or []:
        console.print(f"[yellow]warning[/yellow] {w['code']}: {escape(w['message'])}")


def quality_line(q: dict[str, Any]) -> str:
    """One line about a result's ``quality`` block: pass@1 and what scored it, or why not."""
    scorer = q.get("scorer") or {}
    by = (
        f"{escape(str(scorer.get('package')))} {escape(str(scorer.get('version') or '?'))}, "
        f"{scorer.get('timeout_s')} s per task"
    )
    if q.get("status") != "ok":
        return (
            f"quality ({escape(str(q.get('benchmark')))}): [red]not scored[/red]: "
            f"{escape(str(q.get('error')))} ({by})"
        )
    return (
        f"quality ({escape(str(q.get('benchmark')))}): {q.get('metric')} {q['pass_at_1']:.4g} "
        f"({q['solved']}/{q['tasks']} tasks solved; scored by {by})"
    )


def _run_metrics_table(r: dict[str, Any]) -> Table:
    """The metrics of one successful run (v2 fields that are null are left out)."""
    m, energy, flops = r["metrics"], r.get("energy") or {}, r.get("flops") or {}
    table = Table(title="metrics", show_header=False)
    table.add_column("metric")
    table.add_column("value")
    table.add_row("energy method", method_label(energy.get("method"), energy.get("is_estimate")))
    scope = energy.get("scope") or {}
    if scope.get("ranked") == "measured" and scope.get("estimated_domains"):
        table.add_row(
            "ranked (measured)",
            f"{escape(', '.join(scope['measured_domains']))} by {escape(scope['measured_method'])}"
            f": {fmt(m.get('j_per_output_token_measured'), '.4g')} J/out tok; "
            f"{escape(', '.join(scope['estimated_domains']))} {ESTIMATE} beside it",
        )
    for key in (
        "energy_measured_j",
        "energy_estimated_j",
        "j_per_output_token_measured",
        "j_per_output_token_measured_net",
    ):
        if m.get(key) is not None:
            table.add_row(key, fmt(m[key], ".4g"))
    for key in (
        "energy_total_j",
        "energy_gpu_j",
        "energy_cpu_j",
        "energy_dram_j",
        "j_per_output_token",
        "j_per_request",
        "avg_power_w",
        "co2_g",
    ):
        table.add_row(key, fmt(m.get(key), ".4g"))
    for key in (  # v2: shown when recorded
        "idle_power_w",
        "energy_idle_j",
        "energy_net_j",
        "j_per_output_token_net",
        "energy_prefill_j",
        "energy_decode_j",
        "j_per_input_token_prefill",
        "j_per_output_token_decode",
        "mfu",
        "mbu",
        "pass_at_1",  # v4: scored workloads (HumanEval)
        "j_per_solved_task",
        "j_per_solved_task_net",
    ):
        if m.get(key) is not None:
            table.add_row(key, fmt(m[key], ".4g"))
    for key in (
        "num_requests",
        "tokens_in",
        "tokens_out",
        "duration_s",
        "throughput_out_tok_s",
        "requests_per_s",
    ):
        table.add_row(key, fmt(m.get(key), ".4g"))
    for key in ("ttft_s", "itl_s", "e2e_latency_s"):
        st = m.get(key) or {}
        table.add_row(
            key,
            f"mean {fmt(st.get('mean'), '.4g')}  p50 {fmt(st.get('p50'), '.4g')}  "
            f"p90 {fmt(st.get('p90'), '.4g')}  p99 {fmt(st.get('p99'), '.4g')}  n {st.get('n')}",
        )
    table.add_row(
        "flops_per_output_token",
        f"{fmt(flops.get('per_output_token'), '.4g')} ({flops.get('method')})",
    )
    if flops.get("peak_source"):
        peaks = (
            f"{fmt(flops.get('peak_flops_per_s'), '.4g')} FLOP/s, "
            f"{fmt(flops.get('peak_memory_bw_bytes_per_s'), '.4g')} B/s"
        )
        table.add_row("device peak", f"{peaks} ({escape(flops['peak_source'])})")
    return table


#: Metrics of an experiment summary: (column prefix, label, scale for display).
SUMMARY_METRICS = (
    ("j_per_output_token", "J/out tok", 1.0),
    ("j_per_output_token_net", "J/out tok (net)", 1.0),
    ("j_per_output_token_system", "J/out tok whole system", 1.0),
    ("j_per_output_token_system_net", "J/out tok whole system (net)", 1.0),
    ("energy_measured_j", "measured energy J", 1.0),
    ("energy_estimated_j", "estimated energy J", 1.0),
    ("j_per_input_token_prefill", "J/in tok prefill", 1.0),
    ("j_per_output_token_decode", "J/out tok decode", 1.0),
    ("energy_total_j", "energy J", 1.0),
    ("energy_net_j", "energy net J", 1.0),
    ("energy_prefill_j", "prefill J", 1.0),
    ("energy_decode_j", "decode J", 1.0),
    ("avg_power_w", "avg power W", 1.0),
    ("idle_power_w", "idle power W", 1.0),
    ("co2_g", "CO2 g", 1.0),
    ("throughput_out_tok_s", "tok/s", 1.0),
    ("requests_per_s", "req/s", 1.0),
    ("ttft_p50_s", "TTFT p50 ms", 1000.0),
    ("ttft_p99_s", "TTFT p99 ms", 1000.0),
    ("itl_p50_s", "ITL p50 ms", 1000.0),
    ("itl_p99_s", "ITL p99 ms", 1000.0),
    ("e2e_p50_s", "E2E p50 ms", 1000.0),
    ("mfu", "MFU", 1.0),
    ("mbu", "MBU", 1.0),
    ("pass_at_1", "pass@1", 1.0),
    ("j_per_solved_task", "J/solved task", 1.0),
    ("j_per_solved_task_net", "J/solved task (net)", 1.0),
)

#: Summary metrics that come from the energy meters (labelled when the energy is an estimate).
_ENERGY_PREFIXES = ("j_per_", "energy_", "avg_power_w", "idle_power_w", "co2_g")


def experiment_summary_view(row: dict[str, Any]) -> Group:
    """One experiment's summary row (``aggregate.summarise``): mean ± 95% CI half-width, the
    interval and n per metric, stability warnings, and the energy method (estimates labelled).
    Metrics no run recorded (v2 fields of v1 runs) are left out."""
    lines: list[Any] = [
        f"[bold]experiment[/bold] {row['experiment_id']}  suite {escape(row['suite'])}  "
        f"{row['backend']} {escape(row['model'])} {row['precision']} batch {row['batch_size']} "
        f"{escape(row['workload'])}",
        f"hardware: {escape(row['hardware'] or '-')}  environment "
        f"{escape(row['environment_key'] or '-')}",
    ]
    runs = f"runs: {row['n_ok']} ok"
    if row["n_failed"]:
        runs += f", [red]{row['n_failed']} failed ({escape(row['errors'] or '')})[/red]"
    if row.get("convergence"):
        runs += f"; cycles until converged: {convergence_label(row)}"
    lines.append(runs)
    lines.append(
        f"energy method: {method_label(row['energy_method'], row['energy_is_estimate'])}"
        + (
            f" (ranked: the measured part); whole system: "
            f"{method_label(row.get('system_method'), row.get('system_is_estimate'))}"
            if system_label(row)
            else ""
        )
    )
    stability = row.get("stability") or []
    lines.append(
        f"stability: [yellow]{escape(', '.join(stability))}[/yellow]"
        if stability
        else "stability: [green]ok[/green]"
    )
    if row.get("warning_codes"):
        lines.append(f"measurement warnings: [yellow]{', '.join(row['warning_codes'])}[/yellow]")
    table = Table(title="summary over successful runs (95% t-interval)")
    for col, justify in (
        ("metric", "left"),
        ("mean ± CI", "right"),
        ("95% CI", "right"),
        ("std", "right"),
        ("n", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for prefix, label, scale in SUMMARY_METRICS:
        n = row.get(f"{prefix}_n") or 0
        if not n:
            continue

        def scaled(key: str, p: str = prefix, k: float = scale) -> float | None:
            value = row.get(f"{p}_{key}")
            return None if value is None else value * k

        mean, low, high = scaled("mean"), scaled("ci95_low"), scaled("ci95_high")
        half = ci_half_width(row, prefix)
        half = None if half is None else half * scale
        name = label
        ranked = prefix in ("j_per_output_token", "j_per_output_token_net", "energy_measured_j")
        estimate = row["energy_is_estimate"] if ranked else row.get("system_is_estimate")
        if prefix == "energy_estimated_j" or (estimate and prefix.startswith(_ENERGY_PREFIXES)):
            name += f" ({ESTIMATE})"
        table.add_row(
            name,
            fmt(mean, ".4g") + (f" ± {half:.2g}" if half is not None else ""),
            "-" if low is None else f"[{low:.4g}, {high:.4g}]",
            fmt(scaled("std"), ".3g"),
            str(n),
        )
    after = []
    if row.get("pass_at_1_n") and row.get("pass_at_1_mean") == 0:
        after.append("J/solved task: undefined (no task was solved)")
    return Group(*lines, table, *after)
