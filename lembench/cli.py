"""The ``lembench`` command line.

Exit codes: 0 all runs succeeded; 2 bad input (one line on stderr, nothing written); 3 the suite ran
but some experiments failed (each failure is stored with its reason); 130 interrupted.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from rich.markup import escape

from lembench import __version__
from lembench.advice.commands import advise_command, audit_command, estimate_command
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
    from lembench.display import runs_table
    from lembench.results.aggregate import runs_frame
    from lembench.store import ResultStore

    frame = runs_frame(ResultStore(results_dir).iter_runs(suite))
    if frame.is_empty():
        out.print(f"no runs stored under {results_dir}" + (f" for suite {suite}" if suite else ""))
        return
    out.print(runs_table(frame))


@results.command("show")
@click.argument("ident", metavar="ID")
@results_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw result JSON.")
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

    runs = ResultStore(results_dir).find(ident)
    if not runs:
        raise UserError(f"no stored run or experiment matches {ident!r} under {results_dir}")
    if as_json:
        for run in runs:
            click.echo(json.dumps(run.result, indent=2, ensure_ascii=False))
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


# Commands that live in their own modules (containers, report); their modules import heavy
# libraries only when a command runs.
cli.add_command(images_group)
cli.add_command(doctor_command)
cli.add_command(report_command)
cli.add_command(reproduce_command)
cli.add_command(advise_command)
cli.add_command(estimate_command)
cli.add_command(audit_command)
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
    except click.exceptions.Abort:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        err.print("interrupted; runs stored so far are kept (use --resume to continue)")
        sys.exit(EXIT_INTERRUPTED)
