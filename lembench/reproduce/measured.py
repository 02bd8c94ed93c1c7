"""What the store holds for each experiment of a reproduction suite: a summary with 95% CIs.

Per experiment, the successful runs of its latest environment are summarised
(``lembench.results.aggregate.summarise``): a suite re-run on other hardware is judged on the new
hardware, never averaged with the old. An experiment without a successful run carries the stored
failure reason of its latest run instead (or "not run").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from lembench.results.aggregate import runs_frame, summarise
from lembench.results.environment import environment_key
from lembench.results.summary import stat_of
from lembench.store import ResultStore, StoredRun


@dataclass(frozen=True)
class Measured:
    """One metric of one experiment, as measured (or why it was not)."""

    experiment_id: str
    mean: float | None = None
    low: float | None = None  # 95% CI (None below two runs)
    high: float | None = None
    n: int = 0  # successful runs with a value
    n_failed: int = 0  # failed runs stored for this experiment (any environment)
    energy_method: str | None = None
    is_estimate: bool = False
    hardware: str | None = None
    failure: str | None = None  # why there is no value; None when there is one

    @property
    def rel_half_width(self) -> float | None:
        """Half the CI relative to the mean; None without a CI."""
        if self.mean in (None, 0) or self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2 / abs(self.mean)

    def as_record(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "mean": self.mean,
            "ci95_low": self.low,
            "ci95_high": self.high,
            "n": self.n,
            "n_failed": self.n_failed,
            "energy_method": self.energy_method,
            "is_estimate": self.is_estimate,
            "hardware": self.hardware,
            "failure": self.failure,
        }


@dataclass
class ExperimentRuns:
    """The runs of one experiment used for the comparison."""

    ok: list[StoredRun]  # successful runs of the latest environment
    failed: list[StoredRun]
    summary: dict[str, Any] | None  # the summarise row of ``ok``


def collect(
    store: ResultStore, suite_name: str, experiment_ids: set[str]
) -> dict[str, ExperimentRuns]:
    """Experiment id -> its runs and summary, for every id in ``experiment_ids``."""
    by_id: dict[str, list[StoredRun]] = defaultdict(list)
    for run in store.iter_runs(suite_name):
        if run.experiment_id in experiment_ids:
            by_id[run.experiment_id].append(run)
    out: dict[str, ExperimentRuns] = {}
    for eid in experiment_ids:
        runs = by_id.get(eid, [])
        ok = [r for r in runs if r.result.get("status") == "ok"]
        failed = [r for r in runs if r.result.get("status") != "ok"]
        summary = None
        if ok:
            latest = max(ok, key=lambda r: (str(r.result.get("started_at")), r.run_id))
            key = environment_key(latest.result)
            ok = [r for r in ok if environment_key(r.result) == key]
            summary = summarise(runs_frame(ok)).row(0, named=True)
        out[eid] = ExperimentRuns(ok=ok, failed=failed, summary=summary)
    return out


def _failure(runs: ExperimentRuns) -> str:
    if not runs.failed:
        return "not run (no stored run)"
    last = max(runs.failed, key=lambda r: (str(r.result.get("started_at")), r.run_id))
    error = last.result.get("error") or {}
    reason = error.get("reason") or "failed"
    message = " ".join(str(error.get("message") or "").split())
    if len(message) > 240:
        message = message[:237] + "..."
    count = len(runs.failed)
    return f"failed ({count} run{'s' * (count != 1)}): {reason}" + (
        f": {message}" if message else ""
    )


def measure(runs: ExperimentRuns, experiment_id: str, metric: str) -> Measured:
    """The summary of ``metric`` for one experiment."""
    s = runs.summary
    if s is None:
        return Measured(experiment_id, n_failed=len(runs.failed), failure=_failure(runs))
    stat = stat_of(s, metric)
    common = {
        "n_failed": len(runs.failed),
        "energy_method": s.get("energy_method"),
        "is_estimate": bool(s.get("energy_is_estimate")),
        "hardware": s.get("hardware"),
    }
    if stat.mean is None:
        return Measured(
            experiment_id,
            failure=f"{len(runs.ok)} successful run(s), but none recorded {metric}",
            **common,
        )
    return Measured(
        experiment_id,
        mean=stat.mean,
        low=stat.low,
        high=stat.high,
        n=stat.n,
        **common,
    )
