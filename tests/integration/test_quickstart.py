"""The real CPU path end to end: ``lembench run`` -> local runtime -> harness -> SmolLM2 through
transformers -> validated results in the store. Slow (minutes): marked ``integration``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.contract.results import validation_problem

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "suites" / "quickstart.yaml"


def lembench(*args: str, env: dict[str, str] | None = None, timeout: float = 900):
    # The local runtime tier: `run` is pinned to --runtime local, so a reachable container engine
    # (CI sets DOCKER_HOST for the container tier) does not move these runs into containers.
    if args[:1] == ("run",):
        args = (*args, "--runtime", "local")
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def stored(results_dir: Path, suite: str) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text()) for p in sorted((results_dir / suite).glob("*/*/result.json"))
    ]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory):
    results_dir = tmp_path_factory.mktemp("results")
    proc = lembench("run", str(QUICKSTART), "--results-dir", str(results_dir))
    return results_dir, proc


def test_quickstart_succeeds_and_summarises(quickstart) -> None:
    _, proc = quickstart
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # The run summary is laid out for 100 columns (TTFT and FLOPs are in `results show`).
    assert max(len(line) for line in out.splitlines() if "│" in line or "┃" in line) <= 100
    for header in ("J/out", "energy", "tok/s ±", "ITL ms", "95% confidence interval"):
        assert header in out
    assert "4 runs stored under" in out and "0 failed" in out
    assert "Traceback" not in proc.stderr


def test_every_result_validates_and_counts_are_real(quickstart) -> None:
    results_dir, _ = quickstart
    suite = yaml.safe_load(QUICKSTART.read_text())
    workload = suite["experiment"]["workload"]
    results = stored(results_dir, "quickstart")
    assert len(results) == 2 * 2  # batch sizes x cycles
    assert sorted((r["config"]["batch_size"], r["cycle"]) for r in results) == [
        (1, 1),
        (1, 2),
        (4, 1),
        (4, 2),
    ]
    # One run id per experiment run: <invocation>-<experiment>-c<cycle>.
    assert len({r["run_id"] for r in results}) == 4
    assert len({r["invocation_id"] for r in results}) == 1
    for r in results:
        assert r["run_id"].startswith(r["invocation_id"]) and r["run_id"].endswith(f"c{r['cycle']}")
    for r in results:
        assert validation_problem(r) is None
        assert r["status"] == "ok"
        m = r["metrics"]
        assert m["num_requests"] == workload["num_prompts"]
        assert m["tokens_in"] == workload["num_prompts"] * workload["input_tokens"]
        assert m["tokens_out"] == workload["num_prompts"] * workload["output_tokens"]
        for req in r["requests"]:
            assert req["tokens_out"] == workload["output_tokens"]
            assert req["t_start_s"] < req["t_first_token_s"] < req["t_end_s"]  # TTFT < e2e
        assert m["ttft_s"]["mean"] < m["e2e_latency_s"]["mean"]
        assert m["itl_s"]["n"] == workload["num_prompts"] * (workload["output_tokens"] - 1)
        assert m["energy_total_j"] > 0 and m["j_per_output_token"] > 0
        assert r["flops"]["method"] in ("calflops", "analytical", "params_x2")
        assert 1.5 * r["flops"]["params"] < m["flops_per_output_token"] < 3 * r["flops"]["params"]
        # Honesty: an estimate is labelled as one, in the energy block and in the warnings.
        energy = r["energy"]
        if any(c["is_estimate"] for c in energy["components"]):
            assert energy["is_estimate"] is True
            assert "estimate_used" in {w["code"] for w in r["warnings"]}
        # Measurement v2: an idle baseline, net energy, phases that close, a stored timeline.
        assert r["energy"]["baseline"] is not None
        assert m["energy_net_j"] == pytest.approx(m["energy_total_j"] - m["energy_idle_j"])
        phases = r["energy"]["phases"]
        # A time share (codecarbon: no readable timeline) adds up by construction: no check.
        assert phases["closure_ok"] is (None if phases["method"] == "time_share" else True), phases
        assert r["timeline"]["samples"] >= 2
        timeline = results_dir / "quickstart" / r["experiment_id"] / r["run_id"] / "timeline.jsonl"
        assert len(timeline.read_text().splitlines()) == r["timeline"]["samples"]
        # CPU row: peaks measured on this host at the run's thread count, labelled measured.
        assert r["flops"]["peak_source"].startswith("measured on this host"), r["flops"]
        assert 0 < m["mfu"] < 1.5 and m["mbu"] > 0
        threads = r["provenance"]["measurement"]["threads"]
        assert threads["count"] >= 1 and threads["source"] == "affinity"
        assert r["provenance"]["model"]["gguf_sha256"]
        assert r["provenance"]["stored_by"]["validated"] is True
        assert (
            results_dir / "quickstart" / r["experiment_id"] / r["run_id"] / "harness.log"
        ).exists()


def test_results_list_show_and_resume(quickstart) -> None:
    results_dir, _ = quickstart
    listed = lembench("results", "list", "--results-dir", str(results_dir))
    assert listed.returncode == 0
    assert "4 stored runs" in listed.stdout
    run = stored(results_dir, "quickstart")[0]
    shown = lembench("results", "show", run["run_id"], "--results-dir", str(results_dir), "--json")
    assert shown.returncode == 0
    doc = json.loads(shown.stdout)  # one document: the one run that id names
    assert (doc["run_id"], doc["experiment_id"]) == (run["run_id"], run["experiment_id"])
    assert len({r["run_id"] for r in stored(results_dir, "quickstart")}) == 4  # unique ids
    experiment = lembench(
        "results", "show", run["experiment_id"], "--results-dir", str(results_dir), "--json"
    )
    assert [r["cycle"] for r in json.loads(experiment.stdout)] == [1, 2]
    human = lembench("results", "show", run["experiment_id"][:6], "--results-dir", str(results_dir))
    assert "estimate" in human.stdout and "j_per_output_token" in human.stdout
    resumed = lembench("run", str(QUICKSTART), "--results-dir", str(results_dir), "--resume")
    assert resumed.returncode == 0
    assert "nothing to do" in resumed.stdout
    assert len(stored(results_dir, "quickstart")) == 4


def test_failing_group_is_recorded_and_the_suite_goes_on(tmp_path: Path) -> None:
    suite = tmp_path / "mixed.yaml"
    suite.write_text(
        """schema_version: 1
name: mixed
experiment:
  backend: pytorch
  model: smollm2-135m
  workload: {kind: humaneval, num_prompts: 2, output_tokens: 8}
experiments:
  - model: lembench-test/no-such-model
  - batch_size: 2
"""
    )
    results_dir = tmp_path / "results"
    proc = lembench(
        "run", str(suite), "--results-dir", str(results_dir), env={"HF_HUB_OFFLINE": "1"}
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    results = {r["config"]["model"]: r for r in stored(results_dir, "mixed")}
    failed, ok = results["lembench-test/no-such-model"], results["smollm2-135m"]
    assert failed["status"] == "failed"
    assert failed["error"]["reason"] == "model_load_error"
    assert ok["status"] == "ok"
    assert ok["metrics"]["num_requests"] == 2
    assert 0 < ok["metrics"]["tokens_out"] <= 2 * 8  # HumanEval: EOS allowed, counted for real
    assert all(validation_problem(r) is None for r in results.values())
    assert "1 failed" in proc.stdout
