"""Running a loaded suite end to end: plan, pick the runtime, launch, store, summarise.

The one way to run a suite: ``lembench run`` and ``lembench reproduce`` both call ``run_suite``,
so a reproduction's runs are planned, stored and summarised exactly like any other suite's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from lembench.store import ResultStore, StoredRun
from lembench.suite import Suite

if TYPE_CHECKING:
    from lembench.slurm_cli import SlurmRunArgs


@dataclass
class SuiteRunOutcome:
    """What ``run_suite`` did."""

    suite: Suite
    store: ResultStore
    total: int  # runs the suite asks for (experiments x cycles)
    skipped: int  # runs already stored and skipped (--resume)
    invocation_id: str | None = None  # None when there was nothing to run
    stored: list[StoredRun] = field(default_factory=list)  # this invocation's runs, ok and failed

    @property
    def failed(self) -> list[StoredRun]:
        return [r for r in self.stored if r.result["status"] != "ok"]


def run_suite(
    suite: Suite,
    results_dir: Path,
    out: Console,
    err: Console,
    *,
    resume: bool = False,
    runtime_name: str | None = None,
    slurm: SlurmRunArgs | None = None,
) -> SuiteRunOutcome:
    """Run every experiment of ``suite`` that is not stored yet (``resume``) and store the results.

    Prints the plan, live progress (on ``err``), a summary table of this invocation's runs and where
    they were stored. Failed experiments are stored with their reason and do not stop the suite;
    the caller decides the exit code from ``outcome.failed``.

    The slurm runtime (``runtime_name`` or the suite's ``runtime``) submits job arrays instead
    (lembench.slurm_cli.run_on_slurm, with ``slurm``'s flags).
    """
    if (runtime_name or suite.settings.get("runtime")) == "slurm":
        from lembench.slurm_cli import SlurmRunArgs, run_on_slurm

        return run_on_slurm(suite, results_dir, out, err, resume, slurm or SlurmRunArgs())
    from lembench.display import Progress, summary_table
    from lembench.execute import new_invocation_id, run_launches
    from lembench.plan import plan
    from lembench.results.aggregate import runs_frame, summarise
    from lembench.runtimes import select_runtime

    store = ResultStore(results_dir)
    done = store.completed(suite.name) if resume else frozenset()
    launches = plan(suite, done)
    cycles = suite.settings["cycles"]
    total = len(suite.experiments) * cycles
    todo = sum(len(launch.experiments) for launch in launches)
    outcome = SuiteRunOutcome(suite=suite, store=store, total=total, skipped=total - todo)
    runtime, notice = select_runtime(
        suite.settings, runtime_name, backends={e.config["backend"] for e in suite.experiments}
    )
    if notice:
        err.print(notice, soft_wrap=True)
    out.print(
        f"suite [bold]{suite.name}[/bold]: {len(suite.experiments)} experiments x {cycles} cycles"
        f" = {total} runs in {len(launches)} harness launches (runtime: {runtime.name},"
        f" order: {suite.settings['order']})"
        + (f"; {total - todo} already stored, skipped" if resume else "")
    )
    if not launches:
        out.print("nothing to do: every run is already stored")
        return outcome
    outcome.invocation_id = new_invocation_id()
    with Progress(err, launches, cycles) as progress:
        report = run_launches(
            suite,
            launches,
            store,
            runtime,
            outcome.invocation_id,
            on_event=progress.on_event,
            on_stored=progress.on_stored,
        )
    outcome.stored = [
        r for r in store.iter_runs(suite.name) if r.result["invocation_id"] == outcome.invocation_id
    ]
    out.print(summary_table(summarise(runs_frame(outcome.stored)), title=f"{suite.name}: this run"))
    if any(r.result.get("energy", {}).get("is_estimate") for r in outcome.stored):
        out.print(
            "[yellow]Energy marked 'estimate' is modelled (no hardware meter), "
            "not measured.[/yellow]"
        )
    out.print(
        f"{len(report.stored)} runs stored under {store.root / suite.name}/"
        f"<experiment>/<run>/result.json ({len(report.failed)} failed); "
        f"`lembench results list --suite {suite.name}` lists them."
    )
    return outcome
