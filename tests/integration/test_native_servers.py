"""`lembench run` end to end with the ollama and lmstudio backends against loopback servers that
mirror their documented APIs (tests/fakes): the harness process streams from them, stores each
request's server timings (requests[].engine_stats), validates, and the report reads the runs."""

from __future__ import annotations

import pytest

from tests.fakes.lmstudio_server import FakeLMStudio, LMStudioState, card
from tests.fakes.ollama_server import FakeOllama, OllamaState, model_entry
from tests.integration.test_quickstart import lembench, stored

pytestmark = pytest.mark.integration
pytest.importorskip("httpx")
pytest.importorskip("llama_cpp")  # the alias's tokenizer (vocab only) builds the synthetic prompts

SUITE = """\
schema_version: 3
name: native
experiment:
  model: smollm2-135m
  device: cpu
  warmup: {{runs: 1}}
  workload: {{kind: synthetic, num_prompts: 4, input_tokens: 16, output_tokens: 6,
             exact_output: true, seed: 1}}
  ollama: {{base_url: "{ollama}", model: "smollm2:135m"}}
  lmstudio: {{base_url: "{lmstudio}", model: smollm2-135m-instruct, load: jit}}
measurement: {{idle_baseline_s: 0}}
sweep:
  backend: [ollama, lmstudio]
  batch_size: [2]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    ollama = FakeOllama(OllamaState(models={"smollm2:135m": model_entry("smollm2:135m")}))
    lmstudio = FakeLMStudio(
        LMStudioState(models={"smollm2-135m-instruct": card("smollm2-135m-instruct")})
    )
    root = tmp_path_factory.mktemp("native")
    (root / "native.yaml").write_text(SUITE.format(ollama=ollama.url, lmstudio=lmstudio.url))
    try:
        proc = lembench("run", str(root / "native.yaml"), "--results-dir", str(root / "results"))
    finally:
        ollama.close()
        lmstudio.close()
    return root, proc, ollama.state, lmstudio.state


def test_both_native_backends_run_and_keep_server_timings(runs) -> None:
    root, proc, ollama_state, _ = runs
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by = {r["config"]["backend"]: r for r in stored(root / "results", "native")}
    assert set(by) == {"ollama", "lmstudio"} and all(r["status"] == "ok" for r in by.values())
    o = by["ollama"]
    assert o["metrics"]["tokens_out"] == 4 * 6
    assert all(q["engine_stats"]["eval_count"] == 6 for q in o["requests"])
    assert all(q["engine_stats"]["prompt_eval_duration"] == 130079000 for q in o["requests"])
    assert "cannot force an exact output length" in str(o["provenance"])
    assert "smollm2:135m" not in ollama_state.loaded  # unloaded at the end of the group
    s = by["lmstudio"]
    assert all(
        q["engine_stats"]["stop_reason"] == "maxPredictedTokensReached" for q in s["requests"]
    )
    assert s["metrics"]["tokens_out"] == 4 * 6


def test_the_report_reads_them(runs) -> None:
    root, _, _, _ = runs
    proc = lembench("report", str(root / "results"), "--out", str(root / "site"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    index = (root / "site" / "index.html").read_text()
    assert ">ollama<" in index and ">lmstudio<" in index
