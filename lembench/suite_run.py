"""Running a loaded suite end to end: plan, pick the runtime, launch, store, summarise.

The one way to run a suite: ``lembench run`` and ``lembench reproduce`` both call ``run_suite``,
so a reproduction's runs are planned, stored and summarised exactly like any other suite's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from lembench.plan import Launch
from lembench.store import ResultStore, StoredRun
from lembench.store_lock import prepare_folder, suite_lock
from lembench.store_recovery import recover
from lembench.suite import Suite
from lembench.walltime import WallTimes

if TYPE_CHECKING:
    from lembench.slurm_cli import SlurmRunArgs


@dataclass
class SuiteRunOutcome:
    """What ``run_suite`` did."""

    suite: Suite
    store: ResultStore
    total: int  # runs the suite asks for (experiments x cycles; x max cycles when converging)
    skipped: int  # runs already stored and skipped (--resume)
    invocation_id: str | None = None  # None when there was nothing to run
    stored: list[StoredRun] = field(default_factory=list)  # this invocation's runs, ok and failed
    #: experiment id -> (convergence state, half-width %) with cycles: {min, max, until_ci_pct}
    convergence: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    wall_times: WallTimes = field(default_factory=WallTimes)  # where the launches' time went
    wall_s: float = 0.0  # wall time of the launches

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
    store = ResultStore(results_dir)
    folder = store.root / suite.name
    prepare_folder(folder)  # writable, with room: else one line, exit 2, nothing started
    store.ensure_gitignore()  # before provenance reads `git status`: results are not source
    # One run at a time per suite folder, from before `--resume` reads what is stored to the end.
    with suite_lock(folder):
        recovery = recover(store, suite.name)
        if recovery.summary():
            err.print(recovery.summary(), soft_wrap=True)
        return _run_locked(suite, store, out, err, resume, runtime_name)


def _run_locked(
    suite: Suite,
    store: ResultStore,
    out: Console,
    err: Console,
    resume: bool,
    runtime_name: str | None,
) -> SuiteRunOutcome:
    from lembench.display import TABLE_WIDTH, summary_table
    from lembench.execute import new_invocation_id, run_launches
    from lembench.plan import plan
    from lembench.progress import Progress
    from lembench.results.aggregate import runs_frame, summarise
    from lembench.runtimes import select_runtime

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
    tracker = Tracker.start(suite, store) if suite.settings.get("convergence") else None
    upto = "up to " if tracker is not None else ""
    out.print(
        f"suite [bold]{suite.name}[/bold]: {len(suite.experiments)} experiments x {upto}{cycles}"
        f" cycles = {upto}{total} runs in {upto}{len(launches)} harness launches (runtime:"
        f" {runtime.name}, order: {suite.settings['order']})"
        + (f"; {total - todo} already stored, skipped" if resume else "")
        + (f"; {tracker.rule}" if tracker is not None else "")
    )
    if not launches:
        out.print("nothing to do: every run is already stored")
        return outcome
    outcome.invocation_id = new_invocation_id()
    t0 = time.perf_counter()
    with Progress(err, launches, cycles) as progress:

        def on_event(launch: object, event: dict) -> None:
            progress.on_event(launch, event)
            outcome.wall_times.on_event(event)

        report = run_launches(
            suite,
            launches,
            store,
            runtime,
            outcome.invocation_id,
            on_event=on_event,
            on_stored=progress.on_stored
            if tracker is None
            else lambda run: (progress.on_stored(run), tracker.add(run)),
            before_launch=None if tracker is None else tracker.narrow,
            on_notice=lambda line: err.print(f"[yellow]{line}[/yellow]", soft_wrap=True),
        )
    outcome.wall_s = time.perf_counter() - t0
    outcome.stored = [
        r for r in store.iter_runs(suite.name) if r.result["invocation_id"] == outcome.invocation_id
    ]
    out.print(
        summary_table(summarise(runs_frame(outcome.stored)), title=f"{suite.name}: this run"),
        width=min(out.width, TABLE_WIDTH),
    )
    if tracker is not None:
        outcome.convergence = tracker.states()
        for line in tracker.report_lines():
            out.print(line, highlight=False)
    energies = [r.result.get("energy") or {} for r in outcome.stored]
    if any(e.get("is_estimate") for e in energies):
        out.print(
            "[yellow]Energy marked 'estimate' is modelled (no hardware meter), "
            "not measured.[/yellow]"
        )
    if any(
        (e.get("scope") or {}).get("ranked") == "measured" and e.get("is_estimate")
        for e in energies
    ):
        out.print(
            "[yellow]Runs with measured and estimated components are ranked on the measured "
            "part; their whole-system figure (an estimate) is shown beside it.[/yellow]"
        )
    out.print(
        f"{len(report.stored)} runs stored under {store.root / suite.name}/"
        f"<experiment>/<run>/result.json ({len(report.failed)} failed); "
        f"`lembench results list --suite {suite.name}` lists them."
    )
    out.print(outcome.wall_times.line(outcome.wall_s), highlight=False, soft_wrap=True)
    return outcome


class Tracker:
    """Cycles until converged (``cycles: {min, max, until_ci_pct}``): keeps each experiment's run
    rows, seeded from the store (so ``--resume`` goes on from what is stored) and updated as runs
    are stored, and narrows every planned launch to the experiments still running
    (``lembench.results.convergence``)."""

    def __init__(self, suite: Suite, policy: Any, rows: dict[str, list[dict[str, Any]]]) -> None:
        self.suite, self.policy, self.rows = suite, policy, rows

    @classmethod
    def start(cls, suite: Suite, store: ResultStore) -> Tracker:
        from lembench.results.aggregate import run_row
        from lembench.results.convergence import Policy

        rows: dict[str, list[dict[str, Any]]] = {e.experiment_id: [] for e in suite.experiments}
        for run in store.iter_runs(suite.name):
            if run.result["experiment_id"] in rows:
                rows[run.result["experiment_id"]].append(run_row(run))
        return cls(suite, Policy.from_dict(suite.settings["convergence"]), rows)

    @property
    def rule(self) -> str:
        p = self.policy
        return (
            f"each experiment stops once its 95% interval of J/token is within "
            f"±{p.until_ci_pct:g}% (after {p.min} cycles, at most {p.max})"
        )

    def add(self, run: StoredRun) -> None:
        from lembench.results.aggregate import run_row

        if run.result["experiment_id"] in self.rows:
            self.rows[run.result["experiment_id"]].append(run_row(run))

    def state(self, experiment_id: str) -> tuple[str, float | None]:
        from lembench.results.convergence import state_of_rows

        return state_of_rows(self.rows[experiment_id], self.policy)

    def states(self) -> dict[str, tuple[str, float | None]]:
        return {eid: self.state(eid) for eid in self.rows}

    def narrow(self, launch: Launch) -> Launch | None:
        """``launch`` without the experiments that have stopped; None when none is left."""
        from lembench.results.convergence import STOPPED

        todo = tuple(e for e in launch.experiments if self.state(e.experiment_id)[0] not in STOPPED)
        if not todo:
            return None
        return launch if len(todo) == len(launch.experiments) else replace(launch, experiments=todo)

    def report_lines(self) -> list[str]:
        """One line per experiment: converged after n cycles, or stopped at max, or why."""
        from lembench.results.convergence import describe

        lines = []
        for eid, rows in self.rows.items():
            state, pct = self.state(eid)
            lines.append(f"{eid}: {describe(state, pct, self.policy, len(rows))}")
        return lines
