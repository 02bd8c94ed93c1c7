"""Click commands of the report: ``report_command`` (registered as ``lembench report``) and
``export_command`` (registered as ``lembench results export``).

Both raise ``lembench.errors.UserError`` on bad input (one line, exit code 2 through
``lembench.cli.main``).
"""

from __future__ import annotations

from pathlib import Path

import click

from lembench.options import results_dir_option
from lembench.report import EXPORT_FORMATS


@click.command("report")
@click.argument(
    "results_dir", metavar="RESULTS_DIR", type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the site to (created; a previous lembench site there is replaced).",
)
@click.option("--suite", help="Only runs of this suite.")
@click.option(
    "--allow-mixed",
    is_flag=True,
    help="Report experiments whose runs come from different environments (GPUs, driver, CPU, "
    "versions) or mix measured and estimated energy, flagged, instead of refusing.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into a non-empty folder that is not a lembench site (its files are kept).",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=10),
    default=500,
    show_default=True,
    help="Leaderboard rows per page.",
)
@click.option("--title", help="The site's title (default: LLM inference energy leaderboard).")
@click.option(
    "--about",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A text or Markdown file (e.g. README.md): its first paragraph is shown under the title.",
)
@click.option(
    "--compare",
    "comparisons",
    nargs=2,
    multiple=True,
    metavar="A B",
    help="Add a page comparing A with B (experiment ids or prefixes, or two suites), as "
    "`lembench compare A B` prints it; repeatable.",
)
def report_command(
    results_dir: Path,
    out: Path,
    suite: str | None,
    allow_mixed: bool,
    force: bool,
    page_size: int,
    title: str | None,
    about: Path | None,
    comparisons: tuple[tuple[str, str], ...],
) -> None:
    """Write a static HTML leaderboard of the runs under RESULTS_DIR to --out.

    The site works from file:// or any static host and requests nothing from other hosts: a
    leaderboard (measured and estimated energy in separate sections), SVG charts, one page per
    experiment, a methodology page and the aggregated table as CSV and JSON.
    """
    from lembench.report.build import build_site

    summary = build_site(
        results_dir,
        out,
        suite=suite,
        allow_mixed=allow_mixed,
        force=force,
        page_size=page_size,
        title=title,
        about=first_paragraph(about) if about else None,
        comparisons=list(comparisons),
    )
    click.echo(summary.line())


def first_paragraph(path: Path) -> str:
    """The first paragraph of prose in a text or Markdown file (headings, badges, HTML and code
    fences skipped; Markdown emphasis and link syntax reduced to their text), as plain text."""
    import re

    from lembench.errors import UserError

    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the --about file ({e})") from e
    para: list[str] = []
    fenced = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("```"):
            fenced = not fenced
            continue
        if fenced or s.startswith(("#", "<", "![", "[![", "|", "---")):
            if para:
                break
            continue
        if not s:
            if para:
                break
            continue
        para.append(s)
    out = " ".join(para)
    out = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", out)  # [text](url) -> text
    out = re.sub(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}", r"\1", out)
    return out[:1000]


@click.command("export")
@results_dir_option
@click.option("--suite", help="Only runs of this suite.")
@click.option(
    "--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="csv", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: stdout; parquet needs a file or a redirect).",
)
@click.option(
    "--runs", "per_run", is_flag=True, help="One row per stored run instead of per experiment."
)
@click.option(
    "--allow-mixed",
    is_flag=True,
    help="Aggregate experiments whose runs come from different environments or mix measured "
    "and estimated energy (flagged) instead of refusing.",
)
def export_command(
    results_dir: Path,
    suite: str | None,
    fmt: str,
    out: Path | None,
    per_run: bool,
    allow_mixed: bool,
) -> None:
    """Export the aggregated table (one row per experiment: mean, std, n, 95% CI of every metric)
    or, with --runs, the raw per-run rows, as CSV, Parquet or JSON."""
    from lembench.report.data import collect
    from lembench.report.export import export
    from lembench.report.table import build_rows, table_frame

    collected = collect(results_dir, suite, allow_mixed=allow_mixed or per_run)
    frame = collected.runs if per_run else table_frame(collected, build_rows(collected))
    export(frame, fmt, out)
    if collected.skipped:
        click.echo(
            f"{len(collected.skipped)} result files skipped as unusable "
            "(`lembench results check` lists them)",
            err=True,
        )
    if out is not None:
        what = "runs" if per_run else "experiments"
        click.echo(f"{frame.height} {what} written to {out} ({fmt})", err=True)
