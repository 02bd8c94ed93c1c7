"""The lmstudio backend against a loopback server mirroring LM Studio's REST API v0 and a fake
``lms`` CLI (tests/fakes/lmstudio_server.py): stats per response, model info, load/unload,
errors before and in the stream."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("httpx")

from harness.backends.base import BackendUnavailable, ModelLoadError, Prompt, Sampling
from harness.backends.lmstudio import LMStudioBackend
from harness.backends.lmstudio_options import EXACT_NOTE, engine_kwargs, lms_load_args
from harness.contract import registry
from tests.fakes.lmstudio_server import FakeLMStudio, LMStudioState, card, install_fake_lms

MODEL = "smollm2-135m-instruct"
PROMPTS = [Prompt(token_ids=[], text="one two three"), Prompt(token_ids=[], text="four five")]


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake = FakeLMStudio(LMStudioState(models={MODEL: card(MODEL)}))
    yield fake
    fake.close()


@pytest.fixture
def lms(server, tmp_path, monkeypatch):
    """A fake ``lms`` first on PATH, talking to the fake server."""
    install_fake_lms(tmp_path / "bin", server.url)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    return tmp_path / "bin" / "lms.log"


def backend(url: str, **options) -> LMStudioBackend:
    config = {"backend": "lmstudio", "batch_size": 2, "lmstudio": {"base_url": url, **options}}
    return LMStudioBackend({"kind": "hf", "ref": MODEL}, config)


def test_registered_with_an_alias() -> None:
    assert registry.canonical("lm-studio") == "lmstudio"


def test_options_and_lms_command_line() -> None:
    kw = engine_kwargs(
        {"lmstudio": {"context_length": 2048, "gpu": "max"}},
        {"kind": "hf", "ref": "m"},
        which=lambda name: "/opt/lms",
    )
    assert kw["load"] == "lms" and kw["base_url"] == "http://127.0.0.1:1234"
    assert lms_load_args(kw) == [
        "/opt/lms",
        "load",
        "m",
        "--context-length",
        "2048",
        "--gpu",
        "max",
    ]
    assert engine_kwargs({}, {"kind": "hf", "ref": "m"}, which=lambda name: None)["load"] == "jit"


def test_lms_loads_then_unloads_and_model_info_is_recorded(server, lms) -> None:
    b = backend(server.url, context_length=2048)
    info = b.load()
    m = info.model
    assert m["loaded_with"] == "lms load" and m["model_card"]["state"] == "loaded"
    assert (m["arch"], m["quantization"], m["format"]) == ("llama", "Q4_K_M", "gguf")
    assert m["context_length"] == 2048 and m["max_context_length"] == 8192
    assert info.versions["lmstudio_runtime"] == "1.3.0" and m["exact_output"] == EXACT_NOTE
    assert m["probe_stats"]["stop_reason"] == "maxPredictedTokensReached"
    b.unload()
    calls = [json.loads(line) for line in lms.read_text().splitlines()]
    assert calls == [["load", MODEL, "--context-length", "2048"], ["unload", MODEL]]
    assert server.state.models[MODEL]["state"] == "not-loaded"


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_streamed_requests_keep_lm_studios_stats(server, api) -> None:
    b = backend(server.url, api=api, load="jit")
    b.load()
    try:
        out = b.generate(
            PROMPTS, 5, exact=True, sampling=Sampling(do_sample=True, temperature=0.5, seed=3)
        )
    finally:
        b.unload()
    assert [g.tokens_out for g in out] == [5, 5] and [g.tokens_in for g in out] == [3, 2]
    for g in out:
        assert len(g.token_times) == 5 and g.text == " t0 t1 t2 t3 t4"
        assert g.engine_stats["time_to_first_token"] == 0.299
        assert g.engine_stats["stop_reason"] == "maxPredictedTokensReached"
        assert g.engine_stats["finish_reason"] == "length"
    sent = [b for p, b in server.state.requests if p.startswith("/api/v0/") and b.get("stream")]
    assert sent[-1]["seed"] == 3 and sent[-1]["temperature"] == 0.5 and sent[-1]["max_tokens"] == 5


def test_a_stream_without_stats_is_recorded_as_none(server) -> None:
    server.state.stream_stats = False
    b = backend(server.url, load="jit")
    b.load()
    try:
        (g,) = b.generate(PROMPTS[:1], 4, exact=False)
    finally:
        b.unload()
    assert g.engine_stats is None and g.tokens_out == 4 and len(g.token_times) == 4
    assert b.count_sources["chunks"] == 1  # no usage, no tokenizer: chunks counted, and said


def test_non_streamed_requests_get_stats_but_one_arrival_time(server) -> None:
    b = backend(server.url, load="jit", stream=False)
    b.load()
    try:
        (g,) = b.generate(PROMPTS[:1], 4, exact=True)
    finally:
        b.unload()
    assert g.tokens_out == 4 and len(g.token_times) == 1 and g.engine_stats["generation_time"]


def test_an_early_stop_is_counted(server) -> None:
    server.state.stop_after = 2
    b = backend(server.url, load="jit")
    b.load()
    try:
        (g,) = b.generate(PROMPTS[:1], 4, exact=True)
    finally:
        b.unload()
    assert g.tokens_out == 2 and g.engine_stats["stop_reason"] == "eosFound"
    assert b.exact_violations == 1


def test_server_error_mid_stream_fails_the_request(server) -> None:
    b = backend(server.url, load="jit")
    b.load()
    server.state.fail_after = 1
    try:
        with pytest.raises(RuntimeError, match="server error in stream: The model has crashed"):
            b.generate(PROMPTS[:1], 4, exact=False)
    finally:
        b.unload()


def test_missing_model_lists_what_the_server_has(server) -> None:
    b = backend(server.url, model="qwen2-vl-7b-instruct", load="jit")
    with pytest.raises(
        ModelLoadError, match=rf"no model 'qwen2-vl-7b-instruct' \(it has: {MODEL}\)"
    ):
        b.load()


def test_an_embedding_model_is_refused(server) -> None:
    server.state.models["nomic"] = card("nomic", kind="embeddings")
    with pytest.raises(ModelLoadError, match="is a embeddings, not an llm"):
        backend(server.url, model="nomic", load="jit").load()


def test_a_failing_lms_load_is_a_model_load_error(server, tmp_path, monkeypatch) -> None:
    install_fake_lms(tmp_path / "bin", server.url, fail=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    with pytest.raises(ModelLoadError, match="exited 1: Error: Cannot find a model"):
        backend(server.url).load()


def test_no_server_is_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match="no LM Studio server"):
        backend("http://127.0.0.1:9", load="jit").load()
