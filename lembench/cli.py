"""The ``lembench`` command line.

Exit codes: 0 all runs succeeded; 2 bad input (one line on stderr, nothing written); 3 the suite ran
but some experiments failed (each failure is stored with its reason); 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click
from rich.markup import escape

from lembench import __version__
from lembench.advice.commands import advise_command, audit_command, estimate_command
from lembench.compare_cmd import compare_command
from lembench.doctor import doctor_command
from lembench.errors import UserError
from lembench.images import images_group
from lembench.options import EXIT_SOME_FAILED, console, results_dir_option, runtime_option
from lembench.report.commands import export_command, report_command
from lembench.reproduce.commands import reproduce_command
from lembench.slurm_cli import (
    SlurmRunArgs,
    overrides_from,
    plan_command,
    slurm_options,
    status_command,
)

EXIT_INTERRUPTED = 130
#: As a shell reports a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141

out = console()
err = console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lembench")
def cli() -> None:
    """lembench: measure what LLM inference really costs (energy, throughput, latency, FLOPs)."""


@cli.command()
@click.argument("suite_file", metavar="SUITE")
@results_dir_option
@click.option(
    "--resume", is_flag=True, help="Skip runs already stored successfully for this suite."
)
@runtime_option
@click.option(
    "--no-wait",
    is_flag=True,
    help="Slurm: submit the job arrays, print their ids and return (`lembench status` follows).",
)
@click.option("--requeue", is_flag=True, help="Slurm: resubmit a preempted array task once.")
@slurm_options
def run(
    suite_file: str,
    results_dir: Path,
    resume: bool,
    runtime_name: str | None,
    no_wait: bool,
    requeue: bool,
    **slurm_flags: object,
) -> None:
    """Run every experiment of SUITE (a YAML file) and store the results."""
    from lembench.suite import load_suite
    from lembench.suite_run import run_suite

    suite = load_suite(suite_file)  # every input check happens here, before anything is written
    slurm = SlurmRunArgs(overrides_from(slurm_flags), wait=not no_wait, requeue=requeue)
    outcome = run_suite(
        suite, results_dir, out, err, resume=resume, runtime_name=runtime_name, slurm=slurm
    )
    if outcome.failed:
        raise SystemExit(EXIT_SOME_FAILED)


@cli.command()
@click.argument("suite_file", metavar="SUITE")
def validate(suite_file: str) -> None:
    """Check SUITE and print its expanded grid without running anything."""
    from lembench.display import grid_table
    from lembench.plan import group_experiments
    from lembench.suite import load_suite

    suite = load_suite(suite_file)
    out.print(grid_table(suite))
    s = suite.settings
    groups = len(group_experiments(suite))
    out.print(
        f"{len(suite.experiments)} experiments in {groups} load group{'s' * (groups != 1)}; "
        f"cycles {s['cycles']} "
        f"(order {s['order']}) -> {groups * s['cycles']} harness launches, "
        f"{len(suite.experiments) * s['cycles']} runs. Suite is valid."
    )


@cli.group()
def results() -> None:
    """Inspect stored runs."""


@results.command("list")
@results_dir_option
@click.option("--suite", help="Only runs of this suite.")
def results_list(results_dir: Path, suite: str | None) -> None:
    """List stored runs."""
    from lembench.display import TABLE_WIDTH, runs_table
    from lembench.results.aggregate import runs_frame
    from lembench.store import ResultStore

    store = ResultStore(results_dir)
    frame = runs_frame(store.iter_runs(suite))
    note = store.skipped_note()
    if frame.is_empty():
        out.print(
            f"no runs stored under {results_dir}"
            + (f" for suite {suite}" if suite else "")
            + (f"; {note}" if note else ""),
            soft_wrap=True,
        )
        return
    out.print(runs_table(frame), width=min(out.width, TABLE_WIDTH))
    out.print(f"{frame.height} runs" + (f"; {note}" if note else ""), soft_wrap=True)


@results.command("check")
@results_dir_option
@click.option("--suite", help="Only runs of this suite.")
def results_check(results_dir: Path, suite: str | None) -> None:
    """List every stored result file that readers skip (truncated, malformed, invalid against
    the result schema) and why; exit 1 when there is one."""
    from lembench.store import ResultStore

    store = ResultStore(results_dir)
    usable = sum(1 for _ in store.iter_runs(suite))
    for skipped in store.skipped.values():
        out.print(f"{escape(str(skipped.path))}: {escape(skipped.why)}", soft_wrap=True)
    n = len(store.skipped)
    out.print(f"{usable} usable runs, {n} unusable result file{'s' * (n != 1)} under {results_dir}")
    if n:
        raise SystemExit(1)


@results.command("show")
@click.argument("ident", metavar="ID")
@results_dir_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document: a run's result, or an array of an experiment's results.",
)
@click.option(
    "--allow-mixed",
    is_flag=True,
    help="Summarise an experiment even when its runs come from different environments "
    "(GPUs, driver, CPU, software versions); the summary is flagged mixed_environment.",
)
def results_show(ident: str, results_dir: Path, as_json: bool, allow_mixed: bool) -> None:
    """Show a stored run by run id, or an experiment id (or id prefix): a summary with 95%
    confidence intervals per experiment, then each of its runs."""
    import json

    from lembench.display import experiment_summary_view, show_run
    from lembench.results.aggregate import runs_frame, summarise
    from lembench.store import ResultStore

    if not ident.strip():
        raise UserError("an empty ID matches nothing; pass a run id or an experiment id (prefix)")
    store = ResultStore(results_dir)
    runs = store.find(ident)
    note = store.skipped_note()
    if note:
        err.print(note, soft_wrap=True)
    if not runs:
        raise UserError(f"no stored run or experiment matches {ident!r} under {results_dir}")
    if as_json:  # one document, whatever matched: a parser reads it in one go
        # Older stores share a run id across a launch's experiments: then an array too.
        single = len(runs) == 1 and runs[0].run_id == ident
        doc = runs[0].result if single else [run.result for run in runs]
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    if runs[0].run_id != ident:  # an experiment id (prefix), not one run
        # Refuses (one line, exit 2) to merge runs from different environments unless asked.
        summary = summarise(runs_frame(runs), allow_mixed=allow_mixed)
        for row in summary.iter_rows(named=True):
            out.print(experiment_summary_view(row))
        if any(row["energy_is_estimate"] for row in summary.iter_rows(named=True)):
            out.print(
                "[yellow]Energy marked 'estimate' is modelled (no hardware meter), "
                "not measured.[/yellow]"
            )
        out.print(f"[bold]{len(runs)} run{'s' * (len(runs) != 1)}[/bold]")
    for run in runs:
        show_run(out, run)


@results.command("rm")
@click.argument("idents", metavar="ID...", nargs=-1, required=True)
@results_dir_option
def results_rm(idents: tuple[str, ...], results_dir: Path) -> None:
    """Move stored runs (run ids, or every run of an experiment id or prefix) to the store's
    .trash folder. Nothing is deleted: move a run back to restore it."""
    from lembench.store import ResultStore

    store = ResultStore(results_dir)
    matched = []
    for ident in idents:
        runs = store.find(ident)
        if not runs:
            raise UserError(f"no stored run or experiment matches {ident!r} under {results_dir}")
        matched += runs
    moved = {run.path: store.trash(run) for run in {r.path: r for r in matched}.values()}
    out.print(f"{len(moved)} run{'s' * (len(moved) != 1)} moved to {store.root / '.trash'}")


@results.command("prune")
@results_dir_option
@click.option("--suite", help="Only runs of this suite.")
@click.option("--failed", is_flag=True, required=True, help="Move every failed run (required).")
def results_prune(results_dir: Path, suite: str | None, failed: bool) -> None:
    """Move failed runs to the store's .trash folder (never deleted)."""
    from lembench.store import ResultStore

    store = ResultStore(results_dir)
    runs = [r for r in store.iter_runs(suite) if failed and r.result.get("status") != "ok"]
    for run in runs:
        store.trash(run)
    out.print(f"{len(runs)} failed run{'s' * (len(runs) != 1)} moved to {store.root / '.trash'}")


# Commands that live in their own modules (containers, report); their modules import heavy
# libraries only when a command runs.
cli.add_command(images_group)
cli.add_command(doctor_command)
cli.add_command(report_command)
cli.add_command(reproduce_command)
cli.add_command(advise_command)
cli.add_command(estimate_command)
cli.add_command(audit_command)
cli.add_command(compare_command)
cli.add_command(status_command)
cli.add_command(plan_command)
results.add_command(export_command)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (a scheduler, `kill`) unwinds like Ctrl-C, so the runtime stops the harness's whole
    # process group instead of leaving it running after the controller is gone.
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point: bad input is one line and exit code 2, never a traceback."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(standalone_mode=False)
    except UserError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        sys.exit(e.exit_code)
    except click.UsageError as e:
        # A bad option or argument is bad input like any other: one line, exit 2, no usage dump.
        command = e.ctx.command_path if e.ctx is not None else "lembench"
        err.print(
            f"[red]error:[/red] {escape(command)}: {escape(e.format_message())} "
            f"(`{escape(command)} --help` lists the options)",
            soft_wrap=True,
        )
        sys.exit(2)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except BrokenPipeError:
        # `lembench results export | head`: the reader went away; nothing more to say. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # standalone_mode=False turns Ctrl-C into click's Abort: both say what was kept.
        err.print("interrupted; runs stored so far are kept (use --resume to continue)")
        sys.exit(EXIT_INTERRUPTED)
