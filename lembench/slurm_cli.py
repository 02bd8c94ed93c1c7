"""The command-line side of the slurm runtime: ``lembench run --runtime slurm`` (submit, follow,
ingest; ``--no-wait``, ``--requeue``, sbatch option flags), ``lembench status`` and
``lembench plan --emit-sbatch``. The runtime itself is lembench.runtimes.slurm."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from lembench.options import console, results_dir_option
from lembench.store import ResultStore
from lembench.suite import Suite

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds between two looks at the queue while following (LEMBENCH_SLURM_POLL_S overrides).
POLL_S = 10.0


@dataclass
class SlurmRunArgs:
    """What ``lembench run`` was told about Slurm."""

    overrides: dict[str, Any] = field(default_factory=dict)  # flag -> SlurmOptions field
    wait: bool = True
    requeue: bool = False


def slurm_options(func: F) -> F:
    """The sbatch flags shared by ``run`` and ``plan`` (they override the suite's slurm block)."""
    flags = [
        click.option("--partition", help="Slurm: sbatch --partition."),
        click.option("--account", help="Slurm: sbatch --account."),
        click.option("--qos", help="Slurm: sbatch --qos."),
        click.option("--time", "time_limit", help="Slurm: sbatch --time of one array task."),
        click.option("--gpus", type=click.IntRange(min=0), help="Slurm: GPUs per array task."),
        click.option("--constraint", help="Slurm: sbatch --constraint."),
        click.option(
            "--throttle", type=click.IntRange(min=1), help="Slurm: at most N tasks at once (%N)."
        ),
        click.option(
            "--sbatch-option", "sbatch_extra", multiple=True, help="Slurm: one more sbatch option."
        ),
        click.option(
            "--inner-runtime",
            type=click.Choice(["local", "docker", "pyxis"]),
            help="Slurm: how each task runs the harness on its node.",
        ),
    ]
    for flag in reversed(flags):
        func = flag(func)
    return func


def overrides_from(kwargs: dict[str, Any]) -> dict[str, Any]:
    """SlurmOptions fields from the flags of ``slurm_options`` (unset flags left out)."""
    names = {
        "partition": "partition",
        "account": "account",
        "qos": "qos",
        "time_limit": "time",
        "gpus": "gpus",
        "constraint": "constraint",
        "throttle": "throttle",
        "inner_runtime": "inner",
    }
    out = {field_: kwargs[flag] for flag, field_ in names.items() if kwargs.get(flag) is not None}
    if kwargs.get("sbatch_extra"):
        out["extra"] = list(kwargs["sbatch_extra"])
    return out


def run_on_slurm(
    suite: Suite,
    results_dir: Path,
    out: Console,
    err: Console,
    resume: bool,
    args: SlurmRunArgs,
) -> Any:
    """Submit the suite's launches as job arrays; unless told not to wait, follow them and
    ingest the stored runs. Returns a SuiteRunOutcome."""
    from lembench.execute import controller_provenance, new_invocation_id
    from lembench.plan import plan
    from lembench.runtimes.slurm import follow, ingest, max_array_size, prepare, submit
    from lembench.runtimes.slurm_script import SlurmOptions
    from lembench.suite_run import SuiteRunOutcome

    options = SlurmOptions.from_settings(suite.settings.get("slurm"), args.overrides)
    if shutil.which("sbatch") is None:  # before anything is written
        from lembench.errors import UserError

        raise UserError("no `sbatch` on PATH; install Slurm's client commands", key="runtime slurm")
    store = ResultStore(results_dir)
    done = store.completed(suite.name) if resume else frozenset()
    launches = plan(suite, done)
    cycles = suite.settings["cycles"]
    total = len(suite.experiments) * cycles
    todo = sum(len(launch.experiments) for launch in launches)
    outcome = SuiteRunOutcome(suite=suite, store=store, total=total, skipped=total - todo)
    out.print(
        f"suite [bold]{suite.name}[/bold]: {len(suite.experiments)} experiments x {cycles} cycles"
        f" = {total} runs in {len(launches)} array tasks (runtime: slurm, inner: {options.inner})"
        + (f"; {total - todo} already stored, skipped" if resume else "")
    )
    if not launches:
        out.print("nothing to do: every run is already stored")
        return outcome
    outcome.invocation_id = new_invocation_id()
    prepared = prepare(
        suite,
        launches,
        store,
        outcome.invocation_id,
        options,
        controller_provenance(suite, "slurm"),
        max_array_size(),
    )
    job_ids = submit(prepared)
    out.print(f"submitted job array{'s' * (len(job_ids) != 1)} {' '.join(job_ids)}")
    if not args.wait:
        out.print(f"`lembench status {results_dir}` shows how they stand")
        return outcome
    poll_s = float(os.environ.get("LEMBENCH_SLURM_POLL_S", POLL_S))
    last: list[tuple[int, int, int, int]] = []

    def on_poll(inv: Any) -> None:
        counts = tuple(inv.count(s) for s in ("pending", "running", "done", "failed"))
        if [counts] != last:
            last[:] = [counts]
            err.print("slurm: {} pending, {} running, {} done, {} failed".format(*counts))

    follow(prepared.path, args.requeue, poll_s, on_poll)
    outcome.stored, problems = ingest(prepared.path)
    for problem in problems:
        err.print(f"[red]not stored or invalid:[/red] {problem}", soft_wrap=True)
    from lembench.results.aggregate import runs_frame, summarise

    if outcome.stored:
        from lembench.display import summary_table

        out.print(
            summary_table(summarise(runs_frame(outcome.stored)), title=f"{suite.name}: this run")
        )
    out.print(
        f"{len(outcome.stored)} runs stored under {store.root / suite.name}/"
        f"<experiment>/<run>/result.json ({len(outcome.failed)} failed)"
    )
    return outcome


@click.command("status")
@click.argument("results_dir", type=click.Path(file_okay=False, path_type=Path))
def status_command(results_dir: Path) -> None:
    """Per suite submitted to Slurm: launches pending, running, done and failed (with Slurm's
    reason). Stores a failure record for every run of a task Slurm ended before it stored them."""
    from lembench.runtimes.slurm import invocations, refresh

    out = console()
    paths = invocations(ResultStore(results_dir))
    if not paths:
        out.print(f"no Slurm submissions under {results_dir}")
        return
    table = Table("suite", "invocation", "pending", "running", "done", "failed", "Slurm said")
    for path in paths:
        inv = refresh(path)
        reasons = ", ".join(f"{s} x{n}" for s, n in sorted(inv.slurm_reasons().items()))
        table.add_row(
            inv.suite,
            inv.invocation_id,
            *(str(inv.count(s)) for s in ("pending", "running", "done", "failed")),
            reasons or "-",
        )
    out.print(table)


@click.command("plan")
@click.argument("suite_file", metavar="SUITE")
@results_dir_option
@click.option(
    "--emit-sbatch",
    "emit_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the sbatch scripts of the slurm runtime here (the requests go to the results "
    "folder's .slurm/, where the tasks find them); nothing is submitted.",
)
@click.option("--resume", is_flag=True, help="Leave out runs already stored.")
@slurm_options
def plan_command(
    suite_file: str, results_dir: Path, emit_dir: Path | None, resume: bool, **kwargs: Any
) -> None:
    """Print the launches of SUITE; with --emit-sbatch, write the job array scripts to submit by
    hand (`sbatch <script>`); `lembench status` follows them."""
    from lembench.execute import controller_provenance, new_invocation_id
    from lembench.plan import plan
    from lembench.runtimes.slurm import prepare
    from lembench.runtimes.slurm_script import DEFAULT_MAX_ARRAY_SIZE, SlurmOptions
    from lembench.suite import load_suite

    out = console()
    suite = load_suite(suite_file)
    store = ResultStore(results_dir)
    launches = plan(suite, store.completed(suite.name) if resume else frozenset())
    runs = sum(len(launch.experiments) for launch in launches)
    out.print(f"suite {suite.name}: {runs} runs in {len(launches)} launches")
    if emit_dir is None or not launches:
        return
    from lembench.runtimes.slurm import max_array_size

    options = SlurmOptions.from_settings(suite.settings.get("slurm"), overrides_from(kwargs))
    size = max_array_size() if shutil.which("scontrol") else DEFAULT_MAX_ARRAY_SIZE
    prepared = prepare(
        suite,
        launches,
        store,
        new_invocation_id(),
        options,
        controller_provenance(suite, "slurm"),
        size,
    )
    emit_dir.mkdir(parents=True, exist_ok=True)
    for script in prepared.scripts:
        (emit_dir / script.name).write_text(script.text, "utf-8")
        out.print(f"{emit_dir / script.name}: {script.chunk.size} tasks, sha256 {script.sha256}")
