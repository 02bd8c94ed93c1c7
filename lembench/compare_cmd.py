"""``lembench compare A B``: the terminal view of ``lembench.results.compare`` (a table per pair of
experiments, fitting 100 columns) and its ``--json`` form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lembench.options import console, results_dir_option

if TYPE_CHECKING:  # scipy and the store load only when the command runs
    from lembench.results.compare import Comparison

#: What "±" means, said once in every table that prints one.
PLUS_MINUS = "± is the half-width of the 95% confidence interval over cycles"


def fmt(x: float | None) -> str:
    """Three significant digits; '-' for missing."""
    return "-" if x is None else f"{x:.3g}"


def side_text(mean: float | None, half: float | None, n: int) -> str:
    """``mean ± half-width (n)``."""
    return f"{fmt(mean)}{f' ± {half:.2g}' if half is not None else ''} (n={n})"


def comparison_table(cmp: Comparison) -> Group:
    """One pair as a rich table: metric, A, B, B/A with its interval, p, verdict."""
    table = Table(
        title=f"A {escape(cmp.a.experiment_id[:12])} vs B {escape(cmp.b.experiment_id[:12])}",
        caption=PLUS_MINUS + "; B/A: ratio of means [95% CI]; p: Welch's t test",
        expand=False,
    )
    table.add_column("metric", overflow="fold", ratio=3)
    table.add_column("A", justify="right", overflow="fold", ratio=2)
    table.add_column("B", justify="right", overflow="fold", ratio=2)
    table.add_column("B/A [95% CI]", justify="right", overflow="fold", ratio=2)
    table.add_column("p", justify="right", no_wrap=True)
    table.add_column("verdict", overflow="fold", ratio=3)
    for m in cmp.metrics:
        ratio = fmt(m.ratio)
        if m.ratio_low is not None and m.ratio_high is not None and m.note == "":
            ratio += f" [{m.ratio_low:.3g}, {m.ratio_high:.3g}]"
        verdict = m.verdict
        style = "bold" if m.significant else ("yellow" if m.note else "")
        table.add_row(
            m.metric,
            side_text(m.a.mean, m.a.half_width, m.a.n),
            side_text(m.b.mean, m.b.half_width, m.b.n),
            ratio,
            "-" if m.p_value is None else f"{m.p_value:.2g}",
            Text(verdict, style=style),
        )
    head = Text.assemble(
        ("A: ", "bold"), f"{cmp.a.suite} / {cmp.a.description} ({cmp.a.ok_runs} ok runs)\n",
        ("B: ", "bold"), f"{cmp.b.suite} / {cmp.b.description} ({cmp.b.ok_runs} ok runs)",
    )  # fmt: skip
    return Group(head, table)


@click.command("compare")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@results_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON document.")
def compare_command(a: str, b: str, results_dir: Path, as_json: bool) -> None:
    """Compare A with B: two experiments (ids or id prefixes) or two suites (experiments paired by
    id). Every metric side by side with the ratio B/A, its 95% interval and Welch's t test."""
    from lembench.results.compare import compare

    result = compare(results_dir, a, b)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, allow_nan=False))
        return
    out = console()
    out.width = min(out.width, 100)  # the table folds its cells to fit 100 columns
    for cmp in result.pairs:
        out.print(comparison_table(cmp))
    if result.only_a or result.only_b:
        out.print(
            f"not compared: {len(result.only_a)} experiment(s) only in {escape(a)}, "
            f"{len(result.only_b)} only in {escape(b)}"
        )
