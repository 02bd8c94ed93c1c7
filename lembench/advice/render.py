"""Terminal output of ``lembench advise`` and ``lembench estimate`` (rich, like the rest of the
CLI: estimates are labelled wherever a number appears)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from lembench.advice.advise import Advice, Group
from lembench.advice.compare import fmt_s
from lembench.advice.data import Experiment
from lembench.advice.estimate import Projection, Projections
from lembench.advice.levers import LABELS
from lembench.advice.suggest import Suggestion
from lembench.display import ESTIMATE, fmt, method_label

_STATUS = {
    "detected": "[red]detected[/red]",
    "unverified": "[yellow]unverified[/yellow]",
    "note": "[cyan]note[/cyan]",
}


def _suggestion(console: Console, s: Suggestion, indent: str = "  ") -> None:
    where = f" (add to suite {escape(s.base.suite)})" if s.base is not None and s.snippet else ""
    console.print(f"{indent}[bold]run:[/bold] {escape(s.text)}{where}")
    for line in s.yaml_lines():
        console.print(f"{indent}    {escape(line)}", highlight=False)


def _j_cell(e: Experiment) -> str:
    s = e.stat("j_per_output_token")
    if s is None:
        return "-"
    half = None if s.low is None or s.high is None else (s.high - s.low) / 2
    text = f"{s.mean:.3g}" + (f" ± {half:.2g}" if half is not None else "")
    system = e.stat("j_per_output_token_system")
    if e.system_is_estimate and system is not None and system.mean is not None:
        # Ranked on the measured part; the whole system (with modelled parts) beside it.
        text += f"; {system.mean:.3g} whole system ({ESTIMATE})"
    return text + (f" ({ESTIMATE})" if e.is_estimate else "")


def _group_table(g: Group, advice: Advice) -> Table:
    table = Table(title=None, show_edge=False)
    for col, justify in (
        ("#", "right"),
        ("id", "left"),
        ("backend", "left"),
        ("weights", "left"),
        ("batch", "right"),
        ("hardware", "left"),
        ("J/out tok ± 95% CI", "right"),
        ("tok/s", "right"),
        ("avg W", "right"),
        ("TTFT p99", "right"),
        ("ITL p99", "right"),
        ("E2E p99", "right"),
        ("targets", "center"),
        ("runs", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    marks = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "[yellow]?[/yellow]"}
    for rank, e in enumerate(g.ranked, 1):
        c = g.checks[e.experiment_id]
        runs = str(e.n_ok) + (f" [red]+{e.n_failed} failed[/red]" if e.n_failed else "")
        if e.stability:
            runs += f" [yellow]{escape(', '.join(e.stability))}[/yellow]"
        style = "bold" if e is g.recommended else None
        table.add_row(
            str(rank),
            advice.short.get(e.experiment_id, e.experiment_id),
            e.backend,
            escape(e.weights_label),
            str(e.batch_size),
            escape(e.hardware or "-"),
            _j_cell(e),
            fmt(e.mean("throughput_out_tok_s"), ".3g"),
            fmt(e.mean("avg_power_w"), ".3g"),
            fmt_s(e.mean("ttft_p99_s")),
            fmt_s(e.mean("itl_p99_s")),
            fmt_s(e.mean("e2e_p99_s")),
            marks[c.meets] if advice.scenario.targets else "-",
            runs,
            style=style,
        )
    return table


def print_advice(console: Console, advice: Advice) -> None:
    """The whole report: targets, one section per model and workload, levers, pitfalls."""
    loaded, scn, short = advice.loaded, advice.scenario, advice.short
    where = f" (suite {escape(loaded.suite)})" if loaded.suite else ""
    console.print(
        f"[bold]lembench advise[/bold]: {len(loaded.experiments)} experiments under "
        f"{escape(str(loaded.root))}{where}"
    )
    console.print(f"scenario [bold]{scn.name}[/bold]: {escape(scn.description)}")
    if scn.targets:
        for t in scn.targets:
            console.print(
                f"  target {t.label} <= {fmt_s(t.limit_s)}  [dim]({escape(t.source)})[/dim]"
            )
        console.print(
            "  [dim]a target is met when the mean over runs of each run's p99 is at or below "
            "it; change with --max-ttft-s / --max-itl-s / --max-e2e-s[/dim]"
        )
    else:
        console.print("  no latency target: ranked by energy per token only")
    for g in advice.groups:
        basis = f" ({ESTIMATE}d energy)" if g.basis == "estimate" else " (measured energy)"
        console.print(Rule(f"{escape(g.model)} · {escape(g.workload)}{basis}", align="left"))
        console.print(_group_table(g, advice))
        for s in g.statements:
            console.print(f"• {escape(s.line(short))}")
        if g.suggestion is not None:
            _suggestion(console, g.suggestion)
    console.print(Rule("what each lever changed in these measurements", align="left"))
    for r in advice.levers:
        console.print(f"[bold]{LABELS[r.lever]}[/bold]: {r.summary()}")
        context = None
        for step in r.steps:
            if step.context() != context:
                context = step.context()
                console.print(f"  [dim]{escape(context)}[/dim]")
            console.print(f"    {escape(step.text(short))}")
        if r.suggestion is not None:
            console.print("  no two experiments differ only in this lever")
            _suggestion(console, r.suggestion)
    console.print(Rule("pitfalls", align="left"))
    if not advice.pitfalls:
        console.print("none found in these measurements")
    for p in advice.pitfalls:
        console.print(f"• {_STATUS[p.status]} [bold]{p.code}[/bold]: {escape(p.line(short))}")
        if p.suggestion is not None:
            _suggestion(console, p.suggestion)
    for eid, errors in loaded.failed:
        console.print(
            f"[red]no successful run[/red] for experiment {eid} ({escape(errors)}): left out"
        )
    console.print(
        "[dim]ids are experiment id prefixes: `lembench results show <id>` shows each.[/dim]"
    )


def print_projections(console: Console, p: Projections) -> None:
    """The monthly projection tables (measured and estimated apart) and current vs best."""
    a = p.assumptions
    console.print(
        f"[bold]lembench estimate[/bold]: a projection for {a.requests_per_month:,.0f} "
        f"requests/month from each experiment's energy per request (mean over its runs) x PUE "
        f"{a.pue:g}"
    )
    for note in p.notes:
        console.print(f"  [dim]{escape(note)}[/dim]")
    for title, rows in (("measured energy", p.measured), ("estimated energy", p.estimated)):
        if not rows:
            continue
        label = title if title.startswith("measured") else f"{ESTIMATE}d energy (modelled)"
        console.print(Rule(f"{label}: lowest first", align="left"))
        console.print(_projection_table(rows, p))
    for s in p.statements:
        console.print(f"• {escape(s.line(p.short))}")


def _projection_table(rows: list[Projection], p: Projections) -> Table:
    table = Table(show_edge=False)
    cols = ["id", "config", "hardware", "workload (in->out tok)", "J/request", "kWh/month"]
    if p.assumptions.price_per_kwh is not None:
        cols.append("cost/month")
    cols += ["CO2 kg/month", "energy method"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("id", "config", "hardware") else "right")
    for r in rows:
        e = r.experiment
        cells = [
            p.short.get(e.experiment_id, e.experiment_id)
            + (" [bold](current)[/bold]" if r.current else ""),
            escape(f"{e.model} {e.label()}"),
            escape(e.hardware or "-"),
            escape(e.workload),
            f"{r.j_per_request:.4g}",
            f"{r.kwh:.4g}",
        ]
        if p.assumptions.price_per_kwh is not None:
            cells.append(fmt(r.cost, ".4g"))
        cells += [
            "-" if r.co2_kg is None else f"{r.co2_kg:.4g}",
            method_label(e.energy_method, e.is_estimate),
        ]
        table.add_row(*cells)
    return table
