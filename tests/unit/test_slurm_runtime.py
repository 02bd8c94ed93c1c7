"""The slurm runtime against a fake of Slurm's commands (tests/fakes/fake_slurm.py): submission,
refusals, the task on the node, failure records with Slurm's reason, requeue, status, plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.contract.results import validation_problem
from lembench.execute import controller_provenance, new_invocation_id
from lembench.plan import plan
from lembench.runtimes.local import LocalRuntime
from lembench.runtimes.slurm import ingest, invocations, prepare, refresh, submit
from lembench.runtimes.slurm_acct import query_tasks
from lembench.runtimes.slurm_script import SlurmOptions
from lembench.runtimes.slurm_task import run_task
from lembench.store import ResultStore
from lembench.suite import load_suite
from tests.fakes import fake_slurm
from tests.unit.conftest import make_result

ROOT = Path(__file__).resolve().parents[2]

SUITE = """schema_version: 4
name: slurm-unit
cycles: 2
slurm:
  partition: debug
experiment:
  backend: pytorch
  model: smollm2-135m
sweep:
  precision: [fp32, bf16]
"""

# A harness stand-in that writes a valid result for every requested experiment, from the
# template beside it (ids, suite and cycle taken from the request).
TEMPLATE_HARNESS = """
import json, sys
from pathlib import Path
request = json.loads(Path(sys.argv[2]).read_text())
io = Path(sys.argv[2]).parent
template = json.loads(Path(sys.argv[3] if len(sys.argv) > 3 else {template!r}).read_text())
(io / "results").mkdir(exist_ok=True)
for exp in request["experiments"]:
    result = dict(template, experiment_id=exp["experiment_id"], run_id=exp["run_id"],
                  suite=request["suite"], invocation_id=request["invocation_id"],
                  cycle=request["cycle"], cycles=request["cycles"],
                  load_group=request["load_group"])
    (io / "results" / (exp["experiment_id"] + ".json")).write_text(json.dumps(result))
"""


class FakeSlurm:
    """The fake commands' state file, read and changed by tests."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def state(self) -> dict[str, Any]:
        return json.loads(self.path.read_text())

    def update(self, **changes: Any) -> None:
        self.path.write_text(json.dumps({**self.state(), **changes}))

    def set_task(self, job: str, task: int, state: str, exit_code: str = "0:0") -> None:
        data = self.state()
        data["jobs"][job][str(task)] = {"state": state, "exit_code": exit_code, "reason": "None"}
        self.path.write_text(json.dumps(data))

    def calls(self, name: str) -> list[list[str]]:
        return [c[1:] for c in self.state()["calls"] if c[0] == name]


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    state = tmp_path / "slurm-state.json"
    fake_slurm.install(tmp_path / "bin", state)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_STATE", str(state))
    return FakeSlurm(state)


def lembench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def _prepared(tmp_path: Path, options: SlurmOptions | None = None):
    (tmp_path / "s.yaml").write_text(SUITE)
    suite = load_suite(tmp_path / "s.yaml")
    store = ResultStore(tmp_path / "results")
    prepared = prepare(
        suite,
        plan(suite),
        store,
        new_invocation_id(),
        options or SlurmOptions.from_settings(suite.settings["slurm"]),
        controller_provenance(suite, "slurm"),
    )
    return suite, store, prepared


def test_run_no_wait_submits_one_array_with_one_sbatch_call(
    slurm: FakeSlurm, tmp_path: Path
) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    results = tmp_path / "results"
    proc = lembench(
        "run", str(tmp_path / "s.yaml"), "--runtime", "slurm", "--no-wait",
        "--results-dir", str(results), "--throttle", "2", "--account", "proj",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 runs in 4 array tasks" in proc.stdout and "submitted job array 100" in proc.stdout
    sbatch = slurm.calls("sbatch")
    assert [c[0] for c in sbatch] == ["--test-only", "--parsable"]  # nothing per experiment
    script = Path(sbatch[1][-1]).read_text()
    assert "#SBATCH --array=0-3%2" in script and "#SBATCH --account=proj" in script
    assert "#SBATCH --partition=debug" in script  # from the suite's slurm block
    (inv,) = invocations(ResultStore(results))
    manifest = json.loads((inv / "manifest.json").read_text())
    assert manifest["arrays"][0]["job_id"] == "100" and len(manifest["launches"]) == 4
    for n in range(4):
        request = json.loads((inv / "tasks" / str(n) / "request.json").read_text())
        assert request["controller"]["runtime"] == "slurm+local"
    status = lembench("status", str(results))
    assert status.returncode == 0 and "slurm-unit" in status.stdout, status.stderr
    assert " 4 " in status.stdout  # all 4 pending


def test_refused_partition_is_one_line_exit_2_and_nothing_submitted(
    slurm: FakeSlurm, tmp_path: Path
) -> None:
    slurm.update(refuse="invalid partition specified: nope")
    (tmp_path / "s.yaml").write_text(SUITE)
    results = tmp_path / "results"
    proc = lembench(
        "run", str(tmp_path / "s.yaml"), "--runtime", "slurm", "--partition", "nope",
        "--results-dir", str(results),
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "slurm.partition" in proc.stderr and "invalid partition specified: nope" in proc.stderr
    assert [c[0] for c in slurm.calls("sbatch")] == ["--test-only"]
    assert invocations(ResultStore(results)) == []  # the invocation folder is gone too


def test_no_sbatch_on_path_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    proc = lembench(
        "run", str(tmp_path / "s.yaml"), "--runtime", "slurm",
        "--results-dir", str(tmp_path / "results"),
        env={"PATH": str(Path(sys.executable).parent) + os.pathsep + str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 2 and "no `sbatch` on PATH" in proc.stderr, proc.stderr
    assert not (tmp_path / "results").exists()


def test_slurm_block_needs_schema_version_4(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE.replace("schema_version: 4", "schema_version: 3"))
    proc = lembench("validate", str(tmp_path / "s.yaml"))
    assert proc.returncode == 2 and "slurm: needs schema_version: 4" in proc.stderr


def _task_env(job: str, task: int) -> dict[str, str]:
    return {
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_JOB_ID": job,
        "SLURM_JOB_ID": str(int(job) + 10 + task),
        "SLURMD_NODENAME": "vm",
        "SLURM_JOB_PARTITION": "debug",
        "SLURM_JOB_GPUS": "2,3",
    }


def _template_runtime(tmp_path: Path) -> LocalRuntime:
    template = tmp_path / "template.json"
    template.write_text(json.dumps(make_result()))
    program = tmp_path / "template_harness.py"
    program.write_text(TEMPLATE_HARNESS.format(template=str(template)))
    return LocalRuntime([sys.executable, str(program)])


def test_task_stores_with_slurm_provenance_and_labels_a_shared_node(
    slurm: FakeSlurm, tmp_path: Path
) -> None:
    _, store, prepared = _prepared(tmp_path)
    submit(prepared)
    slurm.update(running_jobs=["111", "4242"])  # another job (4242) shares the node
    assert run_task(prepared.path, 0, _task_env("100", 1), _template_runtime(tmp_path)) == 0
    done = json.loads((prepared.path / "tasks" / "1" / "done.json").read_text())
    assert done["by"] == "task" and [r["status"] for r in done["stored"]] == ["ok"]
    (run,) = store.iter_runs("slurm-unit")
    prov = run.result["provenance"]["slurm"]
    assert prov["array_job_id"] == "100" and prov["array_task_id"] == 1
    assert prov["node"] == "vm" and prov["partition"] == "debug" and prov["gpus"] == [2, 3]
    assert prov["sbatch_sha256"] == prepared.scripts[0].sha256 and prov["node_shared"] is True
    for comp in run.result["energy"]["components"]:
        shared = comp.get("details", {}).get("shared_node")
        assert shared is (True if comp["domain"] in ("cpu", "dram") else None)
    assert validation_problem(run.result) is None


def test_task_on_its_own_node_is_not_labelled_shared(slurm: FakeSlurm, tmp_path: Path) -> None:
    _, store, prepared = _prepared(tmp_path)
    submit(prepared)
    slurm.update(running_jobs=["110"])  # only this task's own job
    run_task(prepared.path, 0, _task_env("100", 0), _template_runtime(tmp_path))
    (run,) = store.iter_runs("slurm-unit")
    assert run.result["provenance"]["slurm"]["node_shared"] is False
    assert all(
        "shared_node" not in (c.get("details") or {}) for c in run.result["energy"]["components"]
    )


@pytest.mark.parametrize(
    ("state", "exit_code", "reason", "stored_code"),
    [
        ("CANCELLED", "0:15", "crashed", None),
        ("OUT_OF_MEMORY", "0:125", "oom", None),
        ("TIMEOUT", "0:1", "timeout", None),
        ("NODE_FAIL", "1:0", "crashed", 1),
        ("PREEMPTED", "0:0", "crashed", 0),
    ],
)
def test_a_task_slurm_ended_is_stored_failed_with_slurms_reason(
    slurm: FakeSlurm, tmp_path: Path, state: str, exit_code: str, reason: str, stored_code: Any
) -> None:
    _, store, prepared = _prepared(tmp_path)
    submit(prepared)
    run_task(prepared.path, 0, _task_env("100", 0), _template_runtime(tmp_path))
    slurm.set_task("100", 0, "COMPLETED")
    slurm.set_task("100", 1, state, exit_code)
    slurm.set_task("100", 2, "RUNNING")
    inv = refresh(prepared.path)
    assert [launch.status for launch in inv.launches] == ["done", "failed", "running", "pending"]
    assert inv.slurm_reasons() == {state: 1}
    failed = [r for r in store.iter_runs("slurm-unit") if r.result["status"] == "failed"]
    assert len(failed) == 1
    result = failed[0].result
    assert result["error"]["reason"] == reason and result["error"]["exit_code"] == stored_code
    assert f"State={state} ExitCode={exit_code}" in result["error"]["message"]
    prov = result["provenance"]["slurm"]
    assert prov["state"] == state and prov["exit_code"] == exit_code and prov["array_task_id"] == 1
    refresh(prepared.path)  # asked again: stored once, not twice
    assert len(list(store.iter_runs("slurm-unit"))) == 2
    runs, problems = ingest(prepared.path)
    assert len(runs) == 2 and len(problems) == 2  # tasks 2 and 3 have stored nothing yet


def test_preempted_task_is_resubmitted_once_when_asked(slurm: FakeSlurm, tmp_path: Path) -> None:
    _, store, prepared = _prepared(tmp_path)
    submit(prepared)
    slurm.set_task("100", 2, "PREEMPTED")
    inv = refresh(prepared.path, requeue=True)
    assert inv.launches[2].status == "pending"
    resubmitted = slurm.calls("sbatch")[-1]
    assert resubmitted[:2] == ["--parsable", "--array=2"]
    assert resubmitted[-1].endswith(prepared.scripts[0].name)  # the same script
    assert not list(store.iter_runs("slurm-unit"))
    slurm.set_task("101", 2, "PREEMPTED")  # preempted again: once is enough
    inv = refresh(prepared.path, requeue=True)
    assert inv.launches[2].status == "failed"
    assert len(slurm.calls("sbatch")) == 3  # test-only, the array, the one resubmission
    (run,) = store.iter_runs("slurm-unit")
    assert run.result["provenance"]["slurm"]["array_job_id"] == "101"


def test_query_uses_sacct_where_accounting_is_on(slurm: FakeSlurm, tmp_path: Path) -> None:
    _, _, prepared = _prepared(tmp_path)
    submit(prepared)
    slurm.set_task("100", 0, "CANCELLED by 0", "0:15")
    assert query_tasks(["100"])[("100", 0)].source == "scontrol"  # accounting disabled
    slurm.update(accounting=True)
    states = query_tasks(["100"])
    assert states[("100", 0)].source == "sacct" and states[("100", 0)].state == "CANCELLED"
    assert len(states) == 4


def test_plan_emit_sbatch_writes_scripts_and_submits_nothing(
    slurm: FakeSlurm, tmp_path: Path
) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    out = tmp_path / "out"
    proc = lembench(
        "plan", str(tmp_path / "s.yaml"), "--emit-sbatch", str(out),
        "--results-dir", str(tmp_path / "results"), "--gpus", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (script,) = out.glob("*.sbatch")
    assert (
        "#SBATCH --gres=gpu:1" in script.read_text() and "#SBATCH --array=0-3" in script.read_text()
    )
    assert slurm.calls("sbatch") == []


def test_ingest_validates_again_what_no_store_of_this_version_stamped(
    slurm: FakeSlurm, tmp_path: Path
) -> None:
    _, _, prepared = _prepared(tmp_path)
    submit(prepared)
    for task in range(2):
        run_task(prepared.path, 0, _task_env("100", task), _template_runtime(tmp_path))
    runs, problems = ingest(prepared.path)
    assert len(runs) == 2 and len(problems) == 2
    # A result changed after its store validated it, stamp removed: found invalid on ingest.
    path = runs[0].path / "result.json"
    bad = json.loads(path.read_text())
    del bad["provenance"]["stored_by"]
    bad["metrics"]["tokens_out"] = "many"
    path.write_text(json.dumps(bad))
    runs, problems = ingest(prepared.path)
    assert len(runs) == 1 and any("tokens_out" in p for p in problems)
