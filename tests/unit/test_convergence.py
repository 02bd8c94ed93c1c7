"""cycles: {min, max, until_ci_pct}: each experiment repeats until the 95% t-interval of its J/token
is narrow enough or max cycles ran; the summary says which; --resume goes on from the store."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from harness.contract.io import RESULTS_DIR, write_json_atomic
from harness.contract.results import base_result
from lembench.errors import UserError
from lembench.execute import new_invocation_id, run_launches
from lembench.plan import plan
from lembench.results.aggregate import runs_frame, summarise
from lembench.results.convergence import Policy, convergence_state, describe
from lembench.runtimes.base import LaunchOutcome, Runtime
from lembench.store import ResultStore
from lembench.suite import load_suite
from lembench.suite_run import Tracker
from tests.unit.conftest import make_result

SUITE = """schema_version: 4
name: conv
cycles: {cycles}
order: {order}
experiment:
  backend: pytorch
  model: smollm2-135m
sweep:
  batch_size: [1, 2]
"""

#: J/token per cycle: batch 1 is steady (converges at min), batch 2 scatters (runs to max).
SERIES = {1: [2.0, 2.02, 1.98, 2.0, 2.01, 1.99], 2: [1.0, 3.0, 0.5, 2.5, 1.0, 3.0]}


class ScriptedHarness(Runtime):
    """A runtime whose 'harness' writes a valid result per requested experiment, with the J/token
    of ``SERIES`` for its batch size and cycle; it records what it was asked to run."""

    name = "scripted"

    def __init__(self) -> None:
        self.launched: list[tuple[int, tuple[int, ...]]] = []

    def launch(self, io_dir, timeout_s, on_poll=None):
        request = json.loads((io_dir / "request.json").read_text())
        sha = hashlib.sha256((io_dir / "request.json").read_bytes()).hexdigest()
        batches = []
        for exp in request["experiments"]:
            batch = exp["config"]["batch_size"]
            batches.append(batch)
            result = base_result(request, exp, sha, "2026-12-05T00:00:00+00:00")
            fields = make_result()
            for key in ("metrics", "energy", "flops", "requests", "environment"):
                result[key] = fields[key]
            j = SERIES[batch][request["cycle"] - 1]
            result["metrics"]["j_per_output_token"] = j
            write_json_atomic(io_dir / RESULTS_DIR / f"{exp['experiment_id']}.json", result)
        self.launched.append((request["cycle"], tuple(batches)))
        log = io_dir / "harness.log"
        log.write_text("scripted\n")
        return LaunchOutcome(0, False, 0.0, log)


def _suite(tmp_path: Path, cycles: str, order: str = "interleaved"):
    (tmp_path / "s.yaml").write_text(SUITE.format(cycles=cycles, order=order))
    return load_suite(tmp_path / "s.yaml")


def _run(suite, store: ResultStore, runtime: ScriptedHarness) -> Tracker:
    tracker = Tracker.start(suite, store)
    run_launches(
        suite,
        plan(suite, store.completed(suite.name)),
        store,
        runtime,
        new_invocation_id(),
        on_stored=tracker.add,
        before_launch=tracker.narrow,
    )
    return tracker


@pytest.mark.parametrize("order", ["interleaved", "sequential", "shuffled"])
def test_each_experiment_stops_on_its_own(tmp_path: Path, order: str) -> None:
    suite = _suite(tmp_path, "{min: 3, max: 5, until_ci_pct: 5}", order)
    assert suite.settings["cycles"] == 5
    assert suite.settings["convergence"] == {"min": 3, "max": 5, "until_ci_pct": 5}
    store = ResultStore(tmp_path / "results")
    runtime = ScriptedHarness()
    tracker = _run(suite, store, runtime)
    per_batch = {b: sum(b in batches for _, batches in runtime.launched) for b in (1, 2)}
    assert per_batch == {1: 3, 2: 5}  # steady: stopped at min; scattered: ran to max
    by_batch = {e.config["batch_size"]: e.experiment_id for e in suite.experiments}
    states = tracker.states()
    assert states[by_batch[1]][0] == "converged" and states[by_batch[1]][1] < 5
    assert states[by_batch[2]][0] == "max_cycles" and states[by_batch[2]][1] > 5

    # The summary says the same, from the stored runs alone (each result carries the rule).
    summary = summarise(runs_frame(store.iter_runs("conv")))
    rows = {r["batch_size"]: r for r in summary.iter_rows(named=True)}
    assert rows[1]["convergence"] == "converged" and rows[1]["n_ok"] == 3
    assert rows[2]["convergence"] == "max_cycles" and rows[2]["n_ok"] == 5
    assert rows[1]["convergence_metric"] == "j_per_output_token"
    assert rows[1]["convergence_ci_pct"] == pytest.approx(states[by_batch[1]][1])


def test_resume_goes_on_from_the_store(tmp_path: Path) -> None:
    """A run cut short after two cycles is resumed: cycle 3 decides for the steady experiment,
    the scattered one goes on to max; nothing stored is run again."""
    suite = _suite(tmp_path, "{min: 3, max: 5, until_ci_pct: 5}")
    store = ResultStore(tmp_path / "results")
    first = ScriptedHarness()
    launches = [launch for launch in plan(suite) if launch.cycle <= 2]
    run_launches(suite, launches, store, first, new_invocation_id())
    assert len(first.launched) == 2
    again = ScriptedHarness()
    _run(suite, store, again)
    assert [c for c, _ in again.launched] == [3, 4, 5]
    assert again.launched[0][1] == (1, 2) and again.launched[1][1] == (2,)


def test_rule_states_and_words() -> None:
    p = Policy(3, 6, 5.0)
    assert convergence_state(p, 2, 0, 1.0) == "running"  # below min, however narrow
    assert convergence_state(p, 3, 0, 4.9) == "converged"
    assert convergence_state(p, 5, 1, 7.0) == "max_cycles"
    assert convergence_state(p, 1, 3, None) == "failing"
    assert describe("converged", 3.14, p, 4) == "converged after 4 cycles (±3.1% <= 5%)"
    assert "stopped at max 6 cycles (±7% > 5%)" in describe("max_cycles", 7.0, p, 6)


def test_fixed_cycles_have_no_convergence_state(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "2")
    assert suite.settings["convergence"] is None
    store = ResultStore(tmp_path / "results")
    run_launches(suite, plan(suite), store, ScriptedHarness(), new_invocation_id())
    summary = summarise(runs_frame(store.iter_runs("conv")))
    assert summary["convergence"].to_list() == [None, None]


@pytest.mark.parametrize(
    ("cycles", "version", "message"),
    [
        ("{min: 5, max: 3}", 4, "s.yaml: cycles.min: min 5 is above max 3; allowed: min <= max"),
        ("{min: 3}", 3, "s.yaml: cycles: needs schema_version: 4 (this suite says 3)"),
        ("{until_ci_pct: 0}", 4, "s.yaml: cycles"),
    ],
)
def test_bad_rules_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cycles, version, message
) -> None:
    monkeypatch.chdir(tmp_path)
    text = SUITE.format(cycles=cycles, order="interleaved").replace(
        "schema_version: 4", f"schema_version: {version}"
    )
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(UserError) as info:
        load_suite("s.yaml")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_request_and_result_carry_the_rule(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "{min: 2, max: 4, until_ci_pct: 10}")
    store = ResultStore(tmp_path / "results")
    started = time.monotonic()
    run_launches(suite, plan(suite)[:1], store, ScriptedHarness(), new_invocation_id())
    assert time.monotonic() - started < 30
    (run, *_) = list(store.iter_runs("conv"))
    assert run.result["convergence"] == {"min": 2, "max": 4, "until_ci_pct": 10}


def test_summary_table_says_which(tmp_path: Path) -> None:
    from rich.console import Console

    from lembench.display import experiment_summary_view, summary_table

    suite = _suite(tmp_path, "{min: 3, max: 5, until_ci_pct: 5}")
    store = ResultStore(tmp_path / "results")
    _run(suite, store, ScriptedHarness())
    summary = summarise(runs_frame(store.iter_runs("conv")))
    console = Console(record=True, width=250)
    console.print(summary_table(summary, "conv"))
    for row in summary.iter_rows(named=True):
        console.print(experiment_summary_view(row))
    text = console.export_text()
    assert "converged ±" in text and "max_cycles ±" in text
    assert "cycles until converged: max_cycles" in text
