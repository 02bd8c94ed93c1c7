"""Build the static leaderboard site from a results folder.

The site works from file:// or any static host and requests nothing from any other host: HTML from
jinja2 templates (autoescaped), SVG charts drawn in Python, one stylesheet and one small script that
only enhances (sorting, filtering). It is rendered into a temporary folder beside the target and
renamed into place, so a failed build leaves no half site; a previous lembench site is replaced
(files a user added to it are kept), any other non-empty folder is refused unless ``force``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from lembench import __version__
from lembench.errors import UserError
from lembench.report import charts
from lembench.report.compare_page import compare_links, compare_pages
from lembench.report.data import Collected, collect
from lembench.report.export import export
from lembench.report.fmt import sig, stat_html
from lembench.report.groups import summarise_groups
from lembench.report.methodology import (
    AGGREGATION,
    WARNING_CODES,
    method_entries,
    metric_entries,
)
from lembench.report.pages import (
    assign_pages,
    batch_panels,
    experiment_context,
    pareto_points,
    row_html,
    tradeoff_panels,
)
from lembench.report.paths import publish_experiments
from lembench.report.quality import accuracy_charts, visible_columns
from lembench.report.reproductions import records_for_site, render_page
from lembench.report.table import COLUMNS, FILTERS, SECTIONS, Row, build_rows, table_frame
from lembench.results.compare import compare

MANIFEST = ".lembench-site.json"
GENERATOR = "lembench report"
HERE = Path(__file__).parent
STATIC_FILES = ("style.css", "leaderboard.js")
#: Above this many rows the index links to the charts page instead of embedding the chart.
INLINE_CHART_MAX = 2000
DEFAULT_PAGE_SIZE = 500
DEFAULT_TITLE = "LLM inference energy leaderboard"
#: From this many experiments on, their pages are rendered in parallel processes.
PARALLEL_MIN = 2000


@dataclass(frozen=True)
class SiteSummary:
    """What a build wrote."""

    out: Path
    experiments: int
    runs: int
    measured: int
    estimated: int
    unranked: int
    index_pages: int
    files: int
    seconds: float
    skipped: int = 0  # result files skipped as unusable

    def line(self) -> str:
        skipped = (
            f"; {self.skipped} result file{'s' * (self.skipped != 1)} skipped as unusable "
            "(`lembench results check` lists them)"
            if self.skipped
            else ""
        )
        return (
            f"site written to {self.out}: {self.experiments} experiments from {self.runs} runs "
            f"({self.measured} measured, {self.estimated} estimated, {self.unranked} without "
            f"energy), {self.index_pages} leaderboard page{'s' * (self.index_pages != 1)}, "
            f"{self.files} files in {self.seconds:.1f} s; open {self.out / 'index.html'}" + skipped
        )


def environment() -> jinja2.Environment:
    """The template environment: autoescape on for every template, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def build_site(
    results_dir: Path,
    out: Path,
    suite: str | None = None,
    allow_mixed: bool = False,
    force: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
    collected: Collected | None = None,
    workers: int | None = None,
    title: str | None = None,
    about: str | None = None,
    comparisons: list[tuple[str, str]] | None = None,
) -> SiteSummary:
    """Aggregate the runs under ``results_dir`` and write the site to ``out`` (atomically).

    Raises UserError for a missing/empty results folder, a mixed experiment (unless
    ``allow_mixed``) or an ``out`` that is a non-empty folder but not a lembench site (unless
    ``force``: then the site is written into it and any existing file it would replace is
    refused). ``collected``: data already read by ``collect`` (then results_dir is not read);
    ``workers``: processes rendering experiment pages (default: one per CPU for large sites);
    ``title`` and ``about``: the site's title and the text under it on the leaderboard;
    ``comparisons``: pairs (A, B) for ``lembench compare``, each written as a page of the site."""
    started = time.perf_counter()
    out = Path(out)
    if collected is None:
        collected = collect(Path(results_dir), suite, allow_mixed)
    check_target(out, force)  # refuse before rendering anything
    publish_experiments(collected.experiments)  # no absolute local path on a page
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        records = records_for_site(Path(results_dir), suite)  # lembench reproduce records
        compared = [(a, b, compare(Path(results_dir), a, b)) for a, b in comparisons or []]
        rows, files, n_pages = render(
            collected, stage, max(1, page_size), workers, records, title, about, compared
        )
        manifest = {
            "generator": GENERATOR,
            "lembench_version": __version__,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": sorted(files),
        }
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")
        stage.chmod(0o755)  # mkdtemp makes it 0700; a site is for reading
        install(stage, out, force)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    classes = [r.energy_class for r in rows]
    return SiteSummary(
        out=out,
        experiments=len(rows),
        runs=collected.n_runs,
        skipped=len(collected.skipped),
        measured=classes.count("measured"),
        estimated=classes.count("estimate"),
        unranked=classes.count("none"),
        index_pages=n_pages,
        files=len(files) + 1,
        seconds=time.perf_counter() - started,
    )


def is_site(path: Path) -> bool:
    """A folder written by ``build_site`` (it has our manifest)."""
    try:
        data = json.loads((path / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("generator") == GENERATOR


def check_target(out: Path, force: bool) -> None:
    """Refuse an ``out`` we must not write to (see build_site)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another --out")
    if is_site(out) or force or not any(out.iterdir()):
        return
    raise UserError(
        f"{out} is not empty and is not a lembench site; choose an empty or new folder, or use "
        "--force to write the site into it (existing files are kept, never deleted)"
    )


def install(stage: Path, out: Path, force: bool) -> None:
    """Move the rendered ``stage`` into place as ``out``."""
    if not out.exists():
        os.rename(stage, out)
        return
    if is_site(out):
        old = json.loads((out / MANIFEST).read_text("utf-8")).get("files", [])
        ours = {str(f).split("/", 1)[0] for f in old if isinstance(f, str)} | {MANIFEST}
        added = [e.name for e in out.iterdir() if e.name not in ours]  # put there by a user
        clash = [name for name in added if (stage / name).exists()]
        if clash:
            raise UserError(
                f"{out / clash[0]} was added by hand and the new site has a file of that name; "
                "move it away and build again"
            )
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, trash / "site")
        try:
            os.rename(stage, out)
        except BaseException:
            os.rename(trash / "site", out)  # put the previous site back
            trash.rmdir()
            raise
        # The user's files move from the old site into the new one; the old site is deleted
        # only when they all made it (else it stays, and the error says where).
        try:
            for name in added:
                os.rename(trash / "site" / name, out / name)
        except OSError as e:
            raise UserError(
                f"could not move {name} into the new site ({e}); it is in {trash}"
            ) from e
        shutil.rmtree(trash, ignore_errors=True)
        return
    if not any(out.iterdir()):
        out.rmdir()
        os.rename(stage, out)
        return
    if not force:  # pragma: no cover - check_target ran first
        raise UserError(f"{out} is not empty and is not a lembench site (use --force)")
    clash = sorted(e.name for e in stage.iterdir() if (out / e.name).exists())
    if clash:
        raise UserError(
            f"{out} already has {', '.join(clash[:5])}; --force never replaces files it did not "
            "write: move them away or choose another --out"
        )
    # The manifest goes last: a merge cut short is not mistaken for a whole site.
    for entry in sorted(stage.iterdir(), key=lambda e: e.name == MANIFEST):
        os.rename(entry, out / entry.name)
    stage.rmdir()


def _write(path: Path, content: str, files: list[str], root: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, "utf-8")
    files.append(path.relative_to(root).as_posix())


def render(
    collected: Collected,
    site: Path,
    page_size: int,
    workers: int | None = None,
    reproductions: list[dict[str, Any]] | None = None,
    title: str | None = None,
    about: str | None = None,
    compared: list[tuple[str, str, Any]] | None = None,
) -> tuple[list[Row], list[str], int]:
    """Write every page, the static files and the downloads into ``site``."""
    env = environment()
    files: list[str] = []
    experiments = list(collected.experiments.values())
    assign_pages(experiments)
    rows = build_rows(collected)
    built_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    common: dict[str, Any] = {
        "version": __version__,
        "built_at": built_at,
        "n_runs": collected.n_runs,
        "n_experiments": len(rows),
        "has_reproductions": bool(reproductions),  # the nav links the page only when it exists
        "site_title": title or DEFAULT_TITLE,
        "compare_links": compare_links(compared or []),
    }

    (site / "static").mkdir()
    for name in STATIC_FILES:
        shutil.copyfile(HERE / "static" / name, site / "static" / name)
        files.append(f"static/{name}")

    # Downloads: the aggregated table (CSV, JSON) and the raw per-run rows (CSV).
    frame = table_frame(collected, rows)
    for fmt in ("csv", "json"):
        export(frame, fmt, site / f"leaderboard.{fmt}")
        files.append(f"leaderboard.{fmt}")
    export(collected.runs, "csv", site / "runs.csv")
    files.append("runs.csv")

    # Leaderboard pages: measured, estimated, no-energy rows in order, page_size rows a page.
    chunks = [rows[i : i + page_size] for i in range(0, len(rows), page_size)] or [[]]
    names = ["index.html"] + [f"index-{i}.html" for i in range(2, len(chunks) + 1)]
    totals = {key: sum(r.energy_class == key for r in rows) for key, _, _ in SECTIONS}
    filters = [
        {"key": c.key, "label": c.label, "values": sorted({str(getattr(r, c.key)) for r in rows})}
        for c in FILTERS
    ]
    suites = sorted({r.exp.suite for r in rows})
    if len(suites) > 1:
        filters.append({"key": "suite", "label": "Suite", "values": suites})
    groups = summarise_groups(rows)
    paretos = group_paretos(rows, groups)  # like with like: one front per hardware x task
    inline = len(rows) <= INLINE_CHART_MAX
    columns = visible_columns(COLUMNS, rows)  # pass@1 columns only when something was scored
    accuracy = accuracy_charts(rows)  # None unless an experiment has pass@1
    index = env.get_template("index.html.j2")
    for i, (name, chunk) in enumerate(zip(names, chunks, strict=True)):
        sections = [
            {
                "key": key,
                "title": title,
                "note": note,
                "total": totals[key],
                "rows": [row_html(r, columns) for r in chunk if r.energy_class == key],
            }
            for key, title, note in SECTIONS
        ]
        html = index.render(
            **common,
            root="",
            page_title="Leaderboard",
            sections=[s for s in sections if s["rows"]],
            columns=columns,
            filters=filters,
            pages=names,
            page_index=i,
            groups=groups,
            about=about or "",
            fmt=sig,
            totals=totals,
            paretos=paretos if i == 0 and inline else None,
            accuracy=accuracy[0] if accuracy and i == 0 and inline else None,
        )
        _write(site / name, html, files, site)

    panels, left_out = batch_panels(rows)
    _write(
        site / "charts.html",
        env.get_template("charts.html.j2").render(
            **common,
            root="",
            page_title="Charts",
            paretos=paretos,
            n_groups=len(groups),
            accuracy=accuracy,
            panels=panels,
            panels_left_out=left_out,
            tradeoffs=tradeoff_panels(rows),
            stat_text=lambda st: Markup(stat_html(st)),
        ),
        files,
        site,
    )
    _write(
        site / "methodology.html",
        env.get_template("methodology.html.j2").render(
            **common,
            root="",
            page_title="Methodology",
            metrics=metric_entries(),
            methods=method_entries(),
            warning_codes=WARNING_CODES,
            aggregation=AGGREGATION,
        ),
        files,
        site,
    )
    (site / "experiments").mkdir()
    files += experiment_pages(rows, site, common, workers)
    files += compare_pages(env, site, compared or [], common, rows)
    if reproductions:  # after experiment_pages: it links to their pages
        files += render_page(env, site, reproductions, collected, common)
    return rows, files, len(chunks)


#: Groups drawn as their own Pareto chart (largest first); the rest are in the downloads.
PARETO_GROUPS_MAX = 24


def group_paretos(rows: list[Row], groups: list[Any]) -> list[dict[str, Any]]:
    """One energy-vs-throughput chart per group (hardware x task): a front across different
    hardware or tasks would compare unlike things. Groups without a point are left out."""
    by_group: dict[str, list[Row]] = {}
    for row in rows:
        by_group.setdefault(row.group, []).append(row)
    out = []
    for i, g in enumerate(groups[:PARETO_GROUPS_MAX]):
        points = pareto_points(by_group.get(g.key, []))
        if points:
            svg = charts.pareto_chart(points, f"pareto-{i}", f"{g.key}: J/token vs throughput")
            out.append({"key": g.key, "svg": svg, "n": len(points)})
    return out


def render_experiments(rows: list[Row], site: Path, common: dict[str, Any]) -> list[str]:
    """Write the page of each row's experiment; returns the site-relative paths written."""
    page = environment().get_template("experiment.html.j2")
    written = []
    for row in rows:
        ctx = experiment_context(row.exp, row)
        html = page.render(**common, root="../", page_title=row.model, **ctx)
        (site / row.exp.page).write_text(html, "utf-8")
        written.append(row.exp.page)
    return written


def experiment_pages(
    rows: list[Row], site: Path, common: dict[str, Any], workers: int | None
) -> list[str]:
    """Write every experiment page; returns the site-relative paths.

    They are most of a large site's rendering time, so from PARALLEL_MIN rows on they are split
    over ``workers`` processes (default: one per CPU): this process renders one share while
    ``python -m lembench.report.worker`` subprocesses render the others from pickled rows."""
    if workers is None:
        workers = (os.cpu_count() or 1) if len(rows) >= PARALLEL_MIN else 1
    workers = max(1, min(workers, len(rows)))
    if workers == 1:
        return render_experiments(rows, site, common)
    shares = [rows[i::workers] for i in range(workers)]  # interleaved: alike page sizes
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p
    )}  # fmt: skip
    started = []
    for share in shares[1:]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lembench.report.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        payload = pickle.dumps((share, str(site), common), protocol=pickle.HIGHEST_PROTOCOL)
        feeder = threading.Thread(target=_feed, args=(proc, payload), daemon=True)
        feeder.start()
        started.append((proc, feeder))
    try:
        written = render_experiments(shares[0], site, common)
    finally:
        outputs = [(proc, proc.stdout.read() if proc.stdout else b"") for proc, _ in started]
        for proc, feeder in started:
            proc.wait()
            feeder.join()
    for proc, output in outputs:
        if proc.returncode != 0:
            tail = output.decode("utf-8", "replace").strip().splitlines()[-5:]
            raise RuntimeError(f"page worker failed ({proc.returncode}): " + " | ".join(tail))
    return written + [row.exp.page for share in shares[1:] for row in share]


def _feed(proc: subprocess.Popen, payload: bytes) -> None:
    """Write a worker's input (in a thread: the pipe blocks until the worker has read it)."""
    try:
        assert proc.stdin is not None
        proc.stdin.write(payload)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # the worker died; its exit status says why
