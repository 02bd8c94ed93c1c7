"""The ollama backend against a loopback server mirroring Ollama's docs/api.md
(tests/fakes/ollama_server.py): streaming with the server's timings, exact-length honesty,
model management (tags/show/pull/ps/unload), errors before and in the stream."""

from __future__ import annotations

import pytest

pytest.importorskip("httpx")

from harness.backends import aio
from harness.backends.base import BackendUnavailable, ModelLoadError, Prompt, Sampling
from harness.backends.ollama import OllamaBackend
from harness.backends.ollama_options import EXACT_NOTE, engine_kwargs, request_options
from harness.contract import registry
from tests.fakes.ollama_server import FakeOllama, OllamaState, model_entry

MODEL = "smollm2:135m"
PROMPTS = [Prompt(token_ids=[], text="one two three"), Prompt(token_ids=[], text="four five")]


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the tokenizer lookup must not reach a network
    fake = FakeOllama(OllamaState(models={MODEL: model_entry(MODEL)}))
    yield fake
    fake.close()


def backend(url: str, **options) -> OllamaBackend:
    config = {"backend": "ollama", "batch_size": 2, "ollama": {"base_url": url, **options}}
    return OllamaBackend({"kind": "hf", "ref": MODEL}, config)


def test_registered_with_its_own_option_block() -> None:
    assert registry.canonical("ollama") == "ollama"
    assert registry.describe("ollama").traffic is True


def test_options_map_onto_the_documented_fields() -> None:
    kw = engine_kwargs(
        {"ollama": {"num_ctx": 2048, "num_gpu": 0}, "threads": 2}, {"kind": "hf", "ref": "m"}
    )
    assert kw["base_url"] == "http://127.0.0.1:11434" and kw["model"] == "m"
    assert kw["options"] == {"num_ctx": 2048, "num_gpu": 0, "num_thread": 2}
    greedy = request_options(kw, 16, Sampling())
    assert greedy["num_predict"] == 16 and greedy["temperature"] == 0.0 and greedy["seed"] == 0
    sampled = request_options(kw, 16, Sampling(do_sample=True, temperature=0.7, top_k=40, seed=5))
    assert (sampled["temperature"], sampled["top_k"], sampled["seed"]) == (0.7, 40, 5)


def test_load_records_show_tags_and_ps_then_unloads(server) -> None:
    b = backend(server.url, keep_alive="10m", num_ctx=512)
    info = b.load()
    m = info.model
    assert m["digest"] == model_entry(MODEL)["digest"] and m["quantization"] == "Q4_1"
    assert m["params"] == 134515008 and m["parameter_size"] == "135M"
    assert m["placement"]["where"] == "cpu" and m["exact_output"] == EXACT_NOTE
    assert info.versions["ollama"] == "0.5.7" and info.dtype == "Q4_1"
    load = next(body for path, body in server.state.requests if path == "/api/generate")
    assert load == {"model": MODEL, "keep_alive": "10m", "options": {"num_ctx": 512}}
    assert MODEL in server.state.loaded
    b.unload()
    assert MODEL not in server.state.loaded  # keep_alive 0 unloaded it
    assert server.state.requests[-1][1] == {"model": MODEL, "keep_alive": 0}


@pytest.mark.parametrize("api", ["generate", "chat"])
def test_generation_keeps_the_servers_timings(server, api) -> None:
    b = backend(server.url, api=api)
    b.load()
    try:
        out = b.generate(PROMPTS, 6, exact=True)
    finally:
        b.unload()
    assert [g.tokens_out for g in out] == [6, 6] and [g.tokens_in for g in out] == [3, 2]
    for g in out:
        assert len(g.token_times) == 6 and g.t_start < g.token_times[0]
        assert g.text == " w0 w1 w2 w3 w4 w5"
        assert g.engine_stats["eval_count"] == 6 and g.engine_stats["done_reason"] == "length"
        assert g.engine_stats["eval_duration"] == 4232710000
        assert set(g.engine_stats) >= {"prompt_eval_duration", "load_duration", "total_duration"}
    asks = [
        b
        for p, b in server.state.requests
        if p == f"/api/{api}" and ("prompt" in b or b.get("messages"))
    ]
    sent = asks[-1]
    assert sent["options"]["num_predict"] == 6 and sent["stream"] is True
    if api == "generate":
        assert sent["raw"] is True


def test_an_early_stop_is_counted_not_hidden(server) -> None:
    server.state.stop_after = 3
    b = backend(server.url)
    b.load()
    try:
        out = b.generate(PROMPTS[:1], 6, exact=True)
    finally:
        b.unload()
    assert out[0].tokens_out == 3 and out[0].engine_stats["done_reason"] == "stop"
    assert b.exact_violations == 1


def test_server_error_mid_stream_fails_the_request(server) -> None:
    b = backend(server.url)
    b.load()
    server.state.fail_after = 2
    try:
        with pytest.raises(RuntimeError, match=r"Ollama error in stream: .*oom"):
            b.generate(PROMPTS[:1], 6, exact=False)
    finally:
        b.unload()


def test_missing_model_is_a_model_load_error_naming_the_fix(server) -> None:
    b = backend(server.url, model="llama3.2")
    with pytest.raises(ModelLoadError, match=r"no model 'llama3.2'.*ollama pull llama3.2"):
        b.load()


def test_missing_model_is_pulled_when_allowed(server) -> None:
    server.state.pullable["llama3.2"] = model_entry("llama3.2:latest", quant="Q4_K_M")
    b = backend(server.url, model="llama3.2", pull=True)
    info = b.load()
    b.unload()
    assert info.model["pulled"] and info.model["quantization"] == "Q4_K_M"
    assert b.pull_log[-1] == {"status": "success"}
    assert any(p.get("completed") == p.get("total") for p in b.pull_log if "total" in p)


def test_a_failed_pull_is_a_model_load_error(server) -> None:
    b = backend(server.url, model="nope", pull=True)
    with pytest.raises(ModelLoadError, match="file does not exist"):
        b.load()


def test_placement_is_checked_against_ps(server) -> None:
    server.state.vram_share = 0.5
    b = backend(server.url, placement="gpu")
    with pytest.raises(BackendUnavailable, match="shows smollm2:135m split"):
        b.load()
    b.unload()


def test_no_server_is_backend_unavailable() -> None:
    b = backend("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(BackendUnavailable, match="no Ollama server"):
        b.load()
    aio.run(b._client.aclose())


def test_engine_stats_reach_the_result_rows_and_validate() -> None:
    import json
    from pathlib import Path

    import jsonschema

    from harness.backends.base import Generation
    from harness.window.metrics import request_timings

    stats = {"eval_count": 2, "eval_duration": 5, "done_reason": "length"}
    rows = request_timings([(0, Generation(3, 2, 1.0, [1.5, 2.0], "x", engine_stats=stats))], 0.5)
    assert rows[0]["engine_stats"] == stats
    plain = request_timings([(0, Generation(3, 2, 1.0, [1.5, 2.0]))], 0.5)
    assert "engine_stats" not in plain[0]  # older engines: rows as before
    schema = json.loads((Path(__file__).parents[2] / "schemas/result.schema.json").read_text())
    row_schema = {**schema["$defs"]["request_timing"], "$defs": schema["$defs"]}
    jsonschema.validate(rows[0], row_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**rows[0], "engine_stats": 3}, row_schema)
