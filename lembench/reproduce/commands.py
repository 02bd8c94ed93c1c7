"""``lembench reproduce``: re-measure a published study's claims on this hardware and judge them.

Exit codes: 0 compared (whatever the verdicts: a claim that does not reproduce is a finding, not
an error); 2 bad input (unknown study, a bad reference or suite file, --dummy-weights where the
suite cannot use it; one line, nothing written); 3 the suite ran but some experiments failed (each
failure is stored, the claims that needed them are judged not comparable and the record is
written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from lembench.options import EXIT_SOME_FAILED, console, results_dir_option, runtime_option


@click.command("reproduce")
@click.argument("study", required=False)
@click.option("--list", "list_studies", is_flag=True, help="List the studies and exit.")
@click.option(
    "--dummy-weights",
    is_flag=True,
    help="Run with random weights of the real architecture (no download); only claims about "
    "cost per token are judged, the others are not comparable.",
)
@results_dir_option
@runtime_option
@click.option("--resume", is_flag=True, help="Skip runs already stored successfully.")
@click.option(
    "--compare-only",
    is_flag=True,
    help="Run nothing: judge the runs already stored (e.g. after running the suite elsewhere).",
)
@click.option(
    "--studies-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of study folders (default: suites/reproductions of this checkout).",
)
def reproduce_command(
    study: str | None,
    list_studies: bool,
    dummy_weights: bool,
    results_dir: Path,
    runtime_name: str | None,
    resume: bool,
    compare_only: bool,
    studies_dir: Path | None,
) -> None:
    """Re-measure the published claims of STUDY and judge each: reproduced, not reproduced or
    not comparable, with why.

    Runs the study's suite (suites/reproductions/STUDY/suite.yaml; its runs join the
    leaderboard), then prints published and measured values side by side with the comparison that
    is fair across hardware (ratios, curve shapes, rankings; absolute values only on the published
    hardware) and writes a record to RESULTS_DIR/_reproductions/STUDY/.
    """
    from rich.markup import escape

    from lembench.errors import UserError
    from lembench.reproduce import reference

    out, err = console(), console(stderr=True)
    folder = reference.studies_dir(studies_dir)
    if list_studies:
        if study:
            raise UserError("--list takes no STUDY; use one or the other")
        _print_list(out, folder)
        return
    if not study:
        raise UserError("name a STUDY (`lembench reproduce --list` shows them) or pass --list")
    if compare_only and resume:
        raise UserError("--resume applies to runs; --compare-only runs nothing")

    from lembench.reproduce.display import print_result
    from lembench.reproduce.runner import reproduce

    found = reference.find_study(folder, study)
    ref = found.reference
    out.print(
        f"[bold]{found.id}[/bold]: {escape(ref['title'])}\n{escape(found.citation_line())}\n"
        f"{escape(ref['citation']['url'])} ({escape(ref['citation']['location'])})\n"
        f"checked against the source: {escape(verification_summary(ref))}",
        soft_wrap=True,
    )
    done = reproduce(
        found,
        results_dir,
        out,
        err,
        dummy=dummy_weights,
        resume=resume,
        runtime_name=runtime_name,
        compare_only=compare_only,
    )
    print_result(out, found, done.results, done.record)
    out.print(f"record written to {done.record_path}")
    if done.outcome is not None and done.outcome.failed:
        raise SystemExit(EXIT_SOME_FAILED)


def verification_summary(ref: dict[str, Any], short: bool = False) -> str:
    """How much of a reference was checked against its source: the published figures (points)
    apart from the descriptive details (hardware, versions, ...) listed as unverified."""
    # A figure quoted by several claims (a shared baseline) counts once.
    figures_by_key = {
        (c["metric"], p["label"], p["published"]): p["verification"]
        for c in ref["claims"]
        for p in c["points"]
    }
    points = list(figures_by_key.values())
    checked = sum(v == "verified" for v in points)
    details = ref["verification"]["unverified"]
    figures = f"{checked} of {len(points)} figures verified"
    if not details:
        return figures
    if short:
        return f"{figures}; {len(details)} details not"
    return f"{figures}; not verified: {', '.join(details)}"


def _print_list(out: Console, folder: Path) -> None:
    from harness.contract.registry import with_capability
    from lembench.reproduce import reference
    from lembench.reproduce.display import study_table
    from lembench.reproduce.runner import dummy_capability

    rows = []
    for study_id in reference.study_ids(folder):
        study = reference.load_study(folder / study_id)
        suite = reference.load_study_suite(study)
        reference.match_points(study, suite)
        why_not = dummy_capability(suite)
        claims = study.claims
        comparable = sum(c["dummy_weights"] == "comparable" for c in claims)
        if why_not:
            backends = sorted({e.config["backend"] for e in suite.experiments})
            capable = with_capability("dummy_weights")
            without = [b for b in backends if b not in capable]
            dummy = f"no ({', '.join(without) or 'local files'}: no dummy weights)"
        else:
            dummy = f"yes ({comparable} of {len(claims)} claims)"
        ref = study.reference
        rows.append(
            {
                "id": study.id,
                "title": ref["title"],
                "source": study.short_source(),
                "hardware": ref["hardware"]["description"].split(" (")[0],
                "claims": len(claims),
                "dummy": dummy,
                "verified": ref["verification"]["status"] == "verified",
                "verification": verification_summary(ref, short=True),
            }
        )
    if not rows:
        out.print(f"no studies under {folder} (a study is a folder with reference.yaml)")
        return
    out.print(study_table(rows, f"{len(rows)} studies in {folder}"))
    out.print("`lembench reproduce STUDY [--dummy-weights]` runs one; docs/reproduce.md explains.")
