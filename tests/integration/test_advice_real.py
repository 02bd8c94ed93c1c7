"""advise, estimate and audit on runs the real CPU path just stored: a tiny llama.cpp suite on
SmolLM2-135M (batch 1 and 4, 4 requests of 8 tokens). 30-50 s on two cores, mostly the harness
starting up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SUITE = """
schema_version: 3
name: advice-real
cycles: 1
measurement:
  idle_baseline_s: 1
experiment:
  backend: llamacpp
  model: smollm2-135m
  precision: fp32
  device: cpu
  warmup: {runs: 1}
  workload: {kind: synthetic, num_prompts: 4, input_tokens: 16, output_tokens: 8, seed: 0}
  llamacpp: {n_threads: 2}
sweep:
  batch_size: [1, 4]
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
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("advice-real")
    suite = folder / "suite.yaml"
    suite.write_text(SUITE)
    proc = lembench(
        "run", str(suite), "--results-dir", str(folder / "results"), "--runtime", "local"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder / "results", suite


def test_advise_on_real_runs(results: tuple[Path, Path]) -> None:
    root, _ = results
    proc = lembench("advise", str(root / "advice-real"), "--scenario", "batch", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (group,) = doc["groups"]
    assert group["model"] == "smollm2-135m" and group["workload"] == "synthetic 16->8"
    ids = {e["id"] for e in group["experiments"]}
    assert len(ids) == 2 and group["recommended"] in ids
    best = next(e for e in group["experiments"] if e["id"] == group["recommended"])
    assert best["metrics"]["j_per_output_token"]["mean"] == min(
        e["metrics"]["j_per_output_token"]["mean"] for e in group["experiments"]
    )
    assert best["quantization"] == "gguf:Q4_1"
    (batch,) = [lv for lv in doc["levers"] if lv["lever"] == "batch_size"]
    (step,) = batch["steps"]
    assert (step["from"], step["to"]) == (1, 4) and set(step["ids"]) == ids
    # the energy is whatever this machine can meter; estimates say so
    if any(e["energy_is_estimate"] for e in group["experiments"]):
        assert group["energy_basis"] == "estimate"
        assert "estimated_energy" in {p["code"] for p in doc["pitfalls"]}


def test_estimate_and_audit_on_real_runs(results: tuple[Path, Path]) -> None:
    root, suite = results
    proc = lembench("estimate", str(root), "--requests-per-month", "1000000", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    rows = doc["measured"] + doc["estimated"]
    assert len(rows) == 2
    for r in rows:
        assert r["kwh_per_month"] == pytest.approx(1e6 * r["j_per_request"] / 3.6e6)
    proc = lembench("audit", str(suite), "--results-dir", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no findings" in proc.stdout
