"""``lembench reproduce`` on the real CPU path: a small study run through the local runtime and the
real harness (SmolLM2 on llama.cpp), and a CUDA-only study with dummy weights failing fast
on a machine without a GPU."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lembench.reproduce import schemas
from tests.helpers.repro_runs import REFERENCE, SUITE, claim, write_study

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def lembench(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # Pinned to the local runtime, so a reachable container engine does not move these runs.
    if args[:1] == ("reproduce",):
        args = (*args, "--runtime", "local")
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ},
    )


def records(results: Path, study: str) -> list[dict]:
    return [
        json.loads(p.read_text("utf-8"))
        for p in sorted((results / "_reproductions" / study).glob("*.json"))
    ]


def _has_nvidia_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:  # no library, no driver, no device
        return False


@pytest.mark.skipif(_has_nvidia_gpu(), reason="a GPU machine would really load Mistral-7B")
def test_cuda_study_with_dummy_weights_fails_fast_and_is_judged_not_comparable(tmp_path: Path):
    results = tmp_path / "results"
    started = time.monotonic()
    proc = lembench(
        "reproduce", "ecocompute-int8-paradox", "--dummy-weights", "--results-dir", str(results),
        cwd=tmp_path,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stdout + proc.stderr  # some experiments failed (stored)
    assert elapsed < 60, f"{elapsed:.0f} s: the failure must come before any model is built"
    assert "Traceback" not in proc.stderr
    assert "0 reproduced, 0 not reproduced, 4 not comparable." in proc.stdout
    stored = sorted((results / "repro-ecocompute-int8-paradox-dummy").glob("*/*/result.json"))
    assert len(stored) == 9  # 3 experiments x 3 cycles, every failure kept with its reason
    for path in stored:
        result = json.loads(path.read_text("utf-8"))
        assert result["status"] == "failed" and result["error"]["message"]
    [record] = records(results, "ecocompute-int8-paradox")
    assert schemas.problem(schemas.RECORD, record) is None
    assert record["dummy_weights"] is True
    by_id = {c["id"]: c for c in record["claims"]}
    assert {c["verdict"] for c in by_id.values()} == {"not_comparable"}
    # The one claim dummy weights could judge names the stored failure; the others say why dummy
    # weights cannot judge them.
    assert "failed (3 runs): " in by_id["int8-pure-energy-penalty"]["why"]
    assert "activation outliers" in by_id["int8-default-energy-penalty"]["why"]


def test_small_study_runs_through_the_real_harness_and_is_judged(tmp_path: Path):
    suite = copy.deepcopy(SUITE)
    suite.update(cycles=2, measurement={"idle_baseline_s": 0})
    suite["experiment"].update(
        backend="llamacpp",  # loads in well under a second (transformers dequantises the GGUF)
        model="smollm2-135m",
        precision="fp32",
        device="cpu",
        llamacpp={"n_threads": 2},
        workload={"kind": "synthetic", "num_prompts": 2, "input_tokens": 8, "output_tokens": 8},
    )
    suite["sweep"] = {"batch_size": [1, 2]}
    reference = copy.deepcopy(REFERENCE)
    throughput = claim(
        "throughput-gain",
        "ratio",
        metric="throughput_out_tok_s",
        unit="output tokens/s",
        comparison={"kind": "ratio", "pairs": [{"numerator": "b2", "denominator": "b1"}]},
        tolerance={"relative": 1.0, "why": "a busy shared CPU: only the claim's direction"},
    )
    throughput["points"] = throughput["points"][:2]
    energy = claim("energy-halving", "curve")
    energy["points"] = energy["points"][:2]
    reference["claims"] = [throughput, energy]
    write_study(tmp_path / "studies", reference=reference, suite=suite)
    results = tmp_path / "results"
    proc = lembench(
        "reproduce", "toy", "--studies-dir", "studies", "--results-dir", str(results),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "published vs measured" in proc.stdout
    [record] = records(results, "toy")
    assert schemas.problem(schemas.RECORD, record) is None
    assert record["invocation_id"] and record["compare_only"] is False
    by_id = {c["id"]: c for c in record["claims"]}
    # Throughput needs no energy meter: it is judged on any machine.
    assert by_id["throughput-gain"]["verdict"] in ("reproduced", "not_reproduced")
    assert all(p["measured"]["n"] == 2 for p in by_id["throughput-gain"]["points"])
    # Energy is judged only when measured; an estimate (most VMs) is not comparable, and says why.
    energy_result = by_id["energy-halving"]
    if any(p["measured"]["is_estimate"] for p in energy_result["points"]):
        assert energy_result["verdict"] == "not_comparable"
        assert "codecarbon's TDP model tracks time, not power" in energy_result["why"]
    # The runs are ordinary suite runs: the leaderboard and `results list` see them.
    listed = lembench("results", "list", "--results-dir", str(results), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "4 stored runs of suite repro-toy" in listed.stdout  # 2 experiments x 2 cycles
