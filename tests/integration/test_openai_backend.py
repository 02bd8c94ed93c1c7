"""The openai backend against a real OpenAI-compatible server: llama-cpp-python's
``python -m llama_cpp.server`` serving SmolLM2-135M on 127.0.0.1. Batches, exact output lengths,
Poisson traffic at two rates, and the example suite end to end. Slow: marked ``integration``."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from harness.backends.base import Prompt
from harness.workloads.traffic import arrival_times, run_traffic

pytestmark = pytest.mark.integration
pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "examples" / "openai-loopback-poisson.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from harness.models.refs import alias_path

    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(alias_path("smollm2-135m")),
        "--model_alias", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048",
        # The server's default interrupts a running stream when another request waits.
        "--interrupt_requests", "False",
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def backend(server: str):
    from harness.backends.openai_compat import OpenAIBackend
    from harness.models.refs import resolve_ref

    b = OpenAIBackend(resolve_ref("smollm2-135m"), {"openai": {"base_url": server}})
    info = b.load()
    assert info.model["served_model"] == "smollm2-135m"
    # llama-cpp-python sends no usage in streams: the tokenizer counts.
    assert info.model["token_counts"] == "tokenizer"
    assert info.model["tokenizer"].startswith("llama_cpp vocab_only")
    yield b
    b.unload()


def _prompts(backend, n: int, length: int = 24, seed: int = 0) -> list[Prompt]:
    rng = random.Random(seed)
    vocab = backend.vocab_token_ids()
    return [Prompt(token_ids=rng.sample(vocab, length)) for _ in range(n)]


def test_batch_with_exact_output_lengths(backend) -> None:
    gens = backend.generate(_prompts(backend, 3), 12, True)
    assert [g.tokens_out for g in gens] == [12, 12, 12]
    assert backend.exact_violations == 0 and backend.unfinished == 0
    for g in gens:
        assert g.tokens_in > 0 and g.text
        assert 0 < len(g.token_times) <= g.tokens_out
        assert g.t_start < g.token_times[0]
        assert g.token_times == sorted(g.token_times)


def test_chat_api_exact_with_logit_bias_only(server: str) -> None:
    from harness.backends.openai_compat import OpenAIBackend
    from harness.models.refs import resolve_ref

    opts = {"base_url": server, "api": "chat", "exact_output": "logit_bias"}
    b = OpenAIBackend(resolve_ref("smollm2-135m"), {"openai": opts})
    b.load()
    try:
        (g,) = b.generate(_prompts(b, 1, seed=3), 10, True)
        assert g.tokens_out == 10 and b.exact_violations == 0
    finally:
        b.unload()


@pytest.mark.parametrize("qps", [0.5, 2.0])
def test_poisson_traffic(backend, qps: float) -> None:
    n = 6
    traffic = {"pattern": "poisson", "qps": qps, "seed": 1}
    offsets = arrival_times(traffic, n)
    assert offsets is not None
    t0 = time.perf_counter()
    run = run_traffic(backend, _prompts(backend, n, seed=int(qps * 10)), traffic, 8, True, t0=t0)
    info = run.info
    assert info["requests"] == n and len(run.generations) == n
    assert all(g.tokens_out == 8 for g in run.generations)
    # Submissions follow the seeded schedule (no cap: no client-side waiting).
    for t, off in zip(run.t_submit, offsets, strict=True):
        assert off - 1e-3 <= t - t0 < off + 0.25
    scheduled = (n - 1) / offsets[-1]
    assert info["qps_achieved"] == pytest.approx(scheduled, rel=0.1)
    assert info["max_in_flight"] >= 1 and info["duration_s"] > offsets[-1]
    achieved, peak = info["qps_achieved"], info["max_in_flight"]
    print(f"qps {qps}: scheduled {scheduled:.3f}, achieved {achieved:.3f}, max in flight {peak}")


def test_flops_from_the_gguf_architecture(backend) -> None:
    est = backend.flops_per_token(40)
    assert est.method == "analytical" and est.per_token is not None
    # SmolLM2-135M: ~134.5 M parameters, tied embeddings.
    assert 2.6e8 < est.per_token < 2.8e8 and est.params == pytest.approx(134.5e6, rel=0.01)


def test_example_suite_end_to_end(server: str, tmp_path: Path) -> None:
    suite = yaml.safe_load(SUITE.read_text())
    suite["experiment"]["openai"]["base_url"] = server
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "lembench", "run", str(path), "--results-dir", str(results),
         "--runtime", "local"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("*/*/*/result.json"))]
    assert len(runs) == 2
    for r in runs:
        assert r["status"] == "ok"
        t = r["traffic"]
        assert t["pattern"] == "poisson" and t["requests"] == 8
        # llama-cpp-python's server sends no llama-server timings: prefill spans start at
        # submission and the window is split by share of work (queue time is not prefill).
        phases = r["energy"]["phases"]
        assert phases["attribution"] == "work_share:submitted"
        # codecarbon on CPU: a time share adds up by construction, so closure is not a check.
        assert phases["closure_ok"] is (None if phases["method"] == "time_share" else True)
        shares = [q["energy_j"] for q in r["requests"]]
        assert all(e >= 0 for e in shares)
        assert sum(shares) <= r["metrics"]["energy_total_j"] * (1 + 1e-9)
        assert r["metrics"]["j_per_request_attributed"]["n"] == 8
        assert r["goodput"]["limits"][0]["name"] == "ttft" and r["goodput"]["requests_met"] >= 0
        assert r["provenance"]["model"]["token_counts"] == "tokenizer"
        # This server sends no usage: the streamed text is re-tokenized, and 16 generated tokens
        # can re-encode as 15 where two pieces merge (seen: 127 of 128).
        assert 8 * 15 <= r["metrics"]["tokens_out"] <= 8 * 16
        print(json.dumps({"qps": t["qps_target"], "achieved": t["qps_achieved"],
                          "metrics": {k: r["metrics"].get(k) for k in (
                              "throughput_out_tok_s", "j_per_output_token", "energy_total_j",
                              "energy_prefill_j", "energy_decode_j", "goodput_fraction",
                              "j_per_request_attributed")},
                          "steady_state": t["steady_state"]}))  # fmt: skip
