"""The executor with real processes (a fake harness program): every planned run ends up stored,
as a result or as a failure record that says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.contract.results import validation_problem
from lembench.execute import build_request, new_invocation_id, run_launches
from lembench.plan import plan
from lembench.runtimes.local import LocalRuntime
from lembench.store import RAW_FILE, ResultStore
from lembench.suite import load_suite

FAKE_HARNESS = Path(__file__).resolve().parents[1] / "helpers" / "fake_harness.py"

SUITE = """schema_version: 1
name: exec-test
cycles: 2
timeout_s: {timeout}
experiment:
  backend: pytorch
  model: smollm2-135m
sweep:
  batch_size: [1, 2]
"""


class ScriptedRuntime(LocalRuntime):
    """The local runtime launching the fake harness, told what to do through behaviour.txt."""

    def __init__(self, behaviour: str) -> None:
        super().__init__(command=[sys.executable, str(FAKE_HARNESS)])
        self.behaviour = behaviour

    def launch(self, io_dir, timeout_s, on_poll=None):
        (io_dir / "behaviour.txt").write_text(self.behaviour)
        return super().launch(io_dir, timeout_s, on_poll)


def _run(tmp_path: Path, behaviour: str, timeout: float = 60):
    (tmp_path / "s.yaml").write_text(SUITE.format(timeout=timeout))
    suite = load_suite(tmp_path / "s.yaml")
    store = ResultStore(tmp_path / "results")
    report = run_launches(
        suite, plan(suite), store, ScriptedRuntime(behaviour), new_invocation_id()
    )
    return suite, store, report


@pytest.mark.parametrize(
    ("behaviour", "reason", "in_message"),
    [
        ("exit 66", "model_load_error", "exit code 66"),
        ("exit 1", "crashed", "fake harness: exit 1"),  # the log tail explains an unknown code
        ("fatal backend_unavailable 65", "backend_unavailable", "fake harness gave up"),
    ],
)
def test_dead_harness_gives_failure_records(
    tmp_path: Path, behaviour: str, reason: str, in_message: str
) -> None:
    _, _, report = _run(tmp_path, behaviour)
    assert len(report.stored) == 4 and len(report.failed) == 4
    for run in report.stored:
        r = run.result
        assert validation_problem(r) is None
        assert r["error"]["reason"] == reason
        assert in_message in r["error"]["message"]
        assert (run.path / "harness.log").exists()
    assert not (tmp_path / "results" / ".work").exists()  # scratch folders cleaned up


def test_timeout_is_recorded(tmp_path: Path) -> None:
    _, _, report = _run(tmp_path, "hang", timeout=2)
    assert {r.result["error"]["reason"] for r in report.stored} == {"timeout"}
    assert "timeout_s=2" in report.stored[0].result["error"]["message"]


def test_invalid_result_is_not_stored_as_ok_and_raw_is_kept(tmp_path: Path) -> None:
    _, _, report = _run(tmp_path, "invalid")
    for run in report.stored:
        assert run.result["error"]["reason"] == "invalid_result"
        assert "result.schema.json" in run.result["error"]["message"]
        assert json.loads((run.path / RAW_FILE).read_text())["status"] == "ok"


def test_relative_results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default --results-dir is relative ("results"); the harness runs in the io folder."""
    (tmp_path / "s.yaml").write_text(SUITE.format(timeout=60))
    monkeypatch.chdir(tmp_path)
    suite = load_suite("s.yaml")
    store = ResultStore(Path("results"))
    runtime = ScriptedRuntime("exit 66")
    report = run_launches(suite, plan(suite), store, runtime, new_invocation_id())
    # The fake harness found its request (else it crashes before printing its line).
    assert all("exit code 66" in r.result["error"]["message"] for r in report.stored)
    assert all(r.path.is_relative_to(tmp_path / "results") for r in report.stored)


def test_resume_after_failures_reruns_everything(tmp_path: Path) -> None:
    suite, store, _ = _run(tmp_path, "exit 66")
    assert store.completed(suite.name) == frozenset()  # failed runs do not count as done
    assert len(plan(suite, store.completed(suite.name))) == 2


def test_request_carries_provenance_and_validates(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE.format(timeout=60))
    suite = load_suite(tmp_path / "s.yaml")
    launch = plan(suite)[0]
    request = build_request(suite, launch, "inv-1", {"lembench_version": "x", "runtime": "local"})
    assert request["cycles"] == 2 and request["base_dir"] == str(tmp_path)
    # One run id per experiment run, though both share the invocation and the cycle.
    assert [e["run_id"] for e in request["experiments"]] == [
        f"inv-1-{e['experiment_id'][:6]}-c1" for e in request["experiments"]
    ]
    assert len({e["run_id"] for e in request["experiments"]}) == 2
    assert "HF_TOKEN" not in json.dumps(request)
