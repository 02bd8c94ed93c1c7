"""pytorch and llamacpp on the same SmolLM2 GGUF in one suite: the same prompts, the same token
counts, one leaderboard table. Real engines on CPU, through ``lembench run`` and ``report``."""

from __future__ import annotations

import pytest

from tests.integration.test_quickstart import lembench, stored

pytestmark = pytest.mark.integration
pytest.importorskip("llama_cpp")

SUITE = """\
schema_version: 3
name: cross
experiment:
  model: smollm2-135m
  precision: fp32
  device: cpu
  warmup: {runs: 1}
  workload: {kind: synthetic, num_prompts: 4, input_tokens: 16, output_tokens: 8,
             exact_output: true, seed: 3}
  pytorch: {threads: 2}
  llamacpp: {n_threads: 2, batching: native}
measurement: {idle_baseline_s: 0}
sweep:
  backend: [pytorch, llamacpp]
  batch_size: [1, 4]
"""


@pytest.fixture(scope="module")
def cross(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cross")
    (root / "cross.yaml").write_text(SUITE)
    results = root / "results"
    proc = lembench("run", str(root / "cross.yaml"), "--results-dir", str(results))
    return root, results, proc


def test_both_engines_measure_the_same_workload(cross) -> None:
    _, results, proc = cross
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = stored(results, "cross")
    assert len(runs) == 4 and all(r["status"] == "ok" for r in runs)
    by = {(r["config"]["backend"], r["config"]["batch_size"]): r for r in runs}
    for batch in (1, 4):
        torch_run, llama_run = by[("pytorch", batch)], by[("llamacpp", batch)]
        for key in ("tokens_in", "tokens_out", "num_requests"):
            assert torch_run["metrics"][key] == llama_run["metrics"][key], key
        assert llama_run["metrics"]["tokens_out"] == 4 * 8
        assert llama_run["provenance"]["backend"]["name"] == "llamacpp"
        # FLOPs per token of one architecture agree across engines (calflops vs GGUF analytical).
        f_torch = torch_run["flops"]["per_output_token"]
        f_llama = llama_run["flops"]["per_output_token"]
        assert f_llama == pytest.approx(f_torch, rel=0.02)


def test_one_leaderboard_table_holds_both_engines(cross) -> None:
    root, results, _ = cross
    site = root / "site"
    proc = lembench("report", str(results), "--out", str(site))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    index = (site / "index.html").read_text()
    assert index.count(">llamacpp<") >= 2 and index.count(">pytorch<") >= 2
