"""The openai backend against an in-process OpenAI-style server (httpx.MockTransport): option
mapping, request bodies, stream parsing, load errors, token counting and timing."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from harness.backends import openai_compat
from harness.backends.base import (
    GREEDY,
    BackendUnavailable,
    ModelLoadError,
    Prompt,
    Sampling,
)
from harness.backends.openai_compat import (
    OpenAIBackend,
    engine_kwargs,
    parse_chunk,
    request_body,
)
from harness.workloads.traffic import run_traffic

REF = {"kind": "hf", "ref": "org/model", "gguf_file": None, "revision": None, "tokenizer": None}
URL = "http://testserver/v1"
SAMPLED = Sampling(
    preset="standard", do_sample=True, temperature=0.7, top_p=0.9, top_k=40, min_p=0.05,
    repetition_penalty=1.1, seed=5,
)  # fmt: skip


class WordTokenizer:
    """Test tokenizer: one token per whitespace-separated word (ids are word lengths)."""

    source = "test words"
    eos_ids = (0,)
    vocab = (1, 2, 3)

    def encode(self, text: str) -> list[int]:
        return [len(w) for w in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join("x" * i for i in ids)


class Server:
    """OpenAI-style endpoints: /models and streamed /completions and /chat/completions."""

    def __init__(self, models: tuple[str, ...] = ("org/model",), usage: bool = True) -> None:
        self.models, self.usage = models, usage
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self.status = 200
        self.words_per_chunk = 1
        self.finish = True
        self.produce: int | None = None  # tokens to produce (default: max_tokens)
        # llama.cpp's server ends each stream with "timings" (server-task.cpp); None: not sent.
        self.prompt_ms: float | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        if request.url.path.endswith("/models"):
            if self.status != 200:
                return httpx.Response(self.status, text="denied")
            return httpx.Response(
                200, json={"object": "list", "data": [{"id": m} for m in self.models]}
            )
        if self.status != 200:
            return httpx.Response(self.status, text="boom")
        body = json.loads(request.content)
        self.bodies.append(body)
        chat = request.url.path.endswith("/chat/completions")
        n = self.produce if self.produce is not None else body["max_tokens"]
        events = []
        if chat:
            events.append({"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]})
        for start in range(0, n, self.words_per_chunk):
            words = min(self.words_per_chunk, n - start)
            text = " w" * words
            choice = {"delta": {"content": text}} if chat else {"text": text}
            events.append({"choices": [{**choice, "finish_reason": None}]})
        if self.finish:
            last = {"delta": {}} if chat else {"text": ""}
            events.append({"choices": [{**last, "finish_reason": "length"}]})
        if self.usage and (body.get("stream_options") or {}).get("include_usage"):
            events.append({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": n}})
        if self.prompt_ms is not None:
            events[-1]["timings"] = {
                "prompt_n": 11, "prompt_ms": self.prompt_ms, "prompt_per_token_ms": 0.1,
                "predicted_n": n, "predicted_ms": 5.0, "predicted_per_token_ms": 5.0 / max(n, 1),
            }  # fmt: skip
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + ": ping\n\ndata: [DONE]\n\n"
        return httpx.Response(
            200, content=sse.encode(), headers={"content-type": "text/event-stream"}
        )


def _backend(server: Server, monkeypatch: pytest.MonkeyPatch, **opts: Any) -> OpenAIBackend:
    monkeypatch.setattr(openai_compat, "load_tokenizer", lambda ref: WordTokenizer())
    backend = OpenAIBackend(REF, {"openai": {"base_url": URL, **opts}, "precision": "fp16"})
    backend.transport = httpx.MockTransport(server)
    return backend


# -- pure mappings -------------------------------------------------------------------------------
def test_engine_kwargs_defaults_and_each_option() -> None:
    kw = engine_kwargs({"openai": {"base_url": "http://h:1/v1/"}}, REF)
    assert kw == {
        "base_url": "http://h:1/v1",
        "model": "org/model",
        "api": "completions",
        "api_key_env": None,
        "timeout_s": 600.0,
        "exact_output": ["ignore_eos", "logit_bias"],
        "stream_usage": True,
    }
    opts = {
        "base_url": "http://h:1/v1",
        "model": "served",
        "api": "chat",
        "api_key_env": "KEY",
        "timeout_s": 5,
        "exact_output": "min_tokens",
        "stream_usage": False,
    }
    kw = engine_kwargs({"openai": opts}, REF)
    assert kw["model"] == "served" and kw["api"] == "chat" and kw["api_key_env"] == "KEY"
    assert kw["timeout_s"] == 5.0 and kw["exact_output"] == ["min_tokens"]
    assert kw["stream_usage"] is False


def test_request_body_completions_greedy_exact_default() -> None:
    kw = engine_kwargs({"openai": {"base_url": URL}}, REF)
    body = request_body(kw, "hi there", 8, True, GREEDY, [0, 2])
    assert body == {
        "model": "org/model",
        "max_tokens": 8,
        "stream": True,
        "prompt": "hi there",
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "top_p": 1.0,
        "ignore_eos": True,
        "logit_bias": {"0": -100, "2": -100},
    }


def test_request_body_chat_sampling_and_each_exact_mechanism() -> None:
    kw = engine_kwargs({"openai": {"base_url": URL, "api": "chat", "stream_usage": False}}, REF)
    body = request_body(kw, "hi", 4, False, SAMPLED, [0])
    assert body["messages"] == [{"role": "user", "content": "hi"}] and "prompt" not in body
    assert "stream_options" not in body
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.7, 0.9, 5)
    assert (body["top_k"], body["min_p"]) == (40, 0.05)
    assert body["repetition_penalty"] == body["repeat_penalty"] == 1.1
    assert not {"ignore_eos", "min_tokens", "logit_bias"} & set(body)  # exact=False
    # Filters that are off are not sent at all.
    plain = request_body(kw, "hi", 4, False, Sampling(do_sample=True), [0])
    assert not {"top_k", "min_p", "repetition_penalty", "repeat_penalty"} & set(plain)

    for mech, expected in (
        ("ignore_eos", {"ignore_eos": True}),
        ("min_tokens", {"min_tokens": 4}),
        ("logit_bias", {"logit_bias": {"0": -100}}),
    ):
        kw = engine_kwargs({"openai": {"base_url": URL, "exact_output": mech}}, REF)
        body = request_body(kw, "hi", 4, True, GREEDY, [0])
        assert {k: body[k] for k in ("ignore_eos", "min_tokens", "logit_bias") if k in body} == (
            expected
        )
    # No EOS id known: logit_bias cannot be built and is left out.
    assert "logit_bias" not in request_body(kw, "hi", 4, True, GREEDY, [])


def test_parse_chunk_shapes() -> None:
    assert parse_chunk({"choices": [{"text": " a", "finish_reason": None}]}, "completions") == (
        " a", None, None,
    )  # fmt: skip
    assert parse_chunk({"choices": [{"delta": {"role": "assistant"}}]}, "chat") == ("", None, None)
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    assert parse_chunk({"choices": [], "usage": usage}, "chat") == ("", usage, None)
    assert parse_chunk({"choices": [{"delta": {}, "finish_reason": "length"}]}, "chat")[2] == (
        "length"
    )
    with pytest.raises(RuntimeError, match="server error in stream: overloaded"):
        parse_chunk({"error": {"message": "overloaded"}}, "completions")


# -- load ----------------------------------------------------------------------------------------
def test_load_checks_the_model_and_probes_token_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server()
    backend = _backend(server, monkeypatch)
    info = backend.load()
    assert info.model["served_model"] == "org/model"
    assert info.model["token_counts"] == "server_usage"
    assert info.model["engine_args"]["exact_output"] == ["ignore_eos", "logit_bias"]
    assert "not the server process" in info.model["energy_scope"]
    assert info.versions["httpx"] == httpx.__version__
    assert server.bodies[0]["max_tokens"] == 2  # the probe
    backend.unload()

    no_usage = _backend(Server(usage=False), monkeypatch)
    assert no_usage.load().model["token_counts"] == "tokenizer"
    no_usage.unload()


def test_load_errors_are_one_liners(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ModelLoadError, match=r"does not serve model 'org/model' \(it serves: a, b\)"
    ):
        _backend(Server(models=("a", "b")), monkeypatch).load()
    denied = Server()
    denied.status = 401
    with pytest.raises(BackendUnavailable, match="HTTP 401"):
        _backend(denied, monkeypatch).load()
    missing = Server()
    missing.status = 404
    with pytest.raises(BackendUnavailable, match="must end with /v1"):
        _backend(missing, monkeypatch).load()
    monkeypatch.delenv("LEMBENCH_TEST_KEY", raising=False)
    with pytest.raises(BackendUnavailable, match=r"\$LEMBENCH_TEST_KEY, which is not set"):
        _backend(Server(), monkeypatch, api_key_env="LEMBENCH_TEST_KEY").load()
    dummy = _backend(Server(), monkeypatch)
    dummy.config["weights"] = "dummy"
    with pytest.raises(ModelLoadError, match="dummy"):
        dummy.load()


def test_connection_refused_says_no_server() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIBackend(REF, {"openai": {"base_url": f"http://127.0.0.1:{port}/v1"}})
    with pytest.raises(BackendUnavailable, match=rf"no server at http://127.0.0.1:{port}/v1"):
        backend.load()


def test_api_key_is_sent_but_never_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMBENCH_TEST_KEY", "sk-secret-123")
    server = Server()
    backend = _backend(server, monkeypatch, api_key_env="LEMBENCH_TEST_KEY")
    info = backend.load()
    assert all(h["authorization"] == "Bearer sk-secret-123" for h in server.headers)
    assert "sk-secret-123" not in json.dumps(info.model) + json.dumps(info.versions)
    backend.unload()


# -- generation ----------------------------------------------------------------------------------
def test_generate_counts_from_usage_and_times_each_text_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = Server()
    server.words_per_chunk = 3  # a chunk carrying several tokens: one timestamp, not spread
    backend = _backend(server, monkeypatch)
    backend.load()
    prompts = [Prompt(token_ids=[2, 3]), Prompt(token_ids=[1], text="given text")]
    gens = backend.generate(prompts, 7, True)
    assert [b["prompt"] for b in server.bodies[-2:]] == ["xx xxx", "given text"]
    for g in gens:
        assert (g.tokens_in, g.tokens_out) == (11, 7)  # the server's usage
        assert len(g.token_times) == 3  # chunks of 3 + 3 + 1 tokens
        assert g.t_start <= g.token_times[0] <= g.token_times[1] <= g.token_times[2]
        assert g.text == " w" * 7
    assert backend.count_sources["server_usage"] == 2 and backend.exact_violations == 0
    backend.unload()


def test_llama_server_timings_give_the_scheduled_time(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server()
    backend = _backend(server, monkeypatch)
    backend.load()
    (plain,) = backend.generate([Prompt(token_ids=[2, 3])], 3, True)
    assert plain.t_scheduled is None  # a server that sends no timings
    server.prompt_ms = 0.0
    (g,) = backend.generate([Prompt(token_ids=[2, 3])], 3, True)
    assert g.t_scheduled == pytest.approx(g.token_times[0])  # prefill took no time
    server.prompt_ms = 1e6  # longer than the request ever waited: never before submission
    (late,) = backend.generate([Prompt(token_ids=[2, 3])], 3, True)
    assert late.t_scheduled == late.t_start
    backend.unload()


def test_engine_scheduled_by_hand() -> None:
    assert openai_compat.engine_scheduled({"prompt_ms": 250.0}, 10.0, 8.0) == pytest.approx(9.75)
    assert openai_compat.engine_scheduled({}, 10.0, 8.0) is None
    assert openai_compat.engine_scheduled({"prompt_ms": 5.0}, None, 8.0) is None


def test_without_usage_the_tokenizer_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server(usage=False)
    backend = _backend(server, monkeypatch, api="chat")
    backend.load()
    (g,) = backend.generate([Prompt(token_ids=[4, 4, 4])], 5, False)
    assert server.bodies[-1]["messages"][0]["content"] == "xxxx xxxx xxxx"
    assert (g.tokens_in, g.tokens_out, len(g.token_times)) == (3, 5, 5)
    assert backend.count_sources == {"tokenizer": 1}
    backend.unload()


def test_short_and_cut_streams_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server()
    backend = _backend(server, monkeypatch)
    backend.load()
    server.produce = 3
    (g,) = backend.generate([Prompt(token_ids=[1])], 6, True)
    assert g.tokens_out == 3 and backend.exact_violations == 1
    server.finish = False
    backend.generate([Prompt(token_ids=[1])], 6, False)
    assert backend.unfinished == 1
    server.status = 500
    with pytest.raises(RuntimeError, match="HTTP 500: boom"):
        backend.generate([Prompt(token_ids=[1])], 6, False)
    backend.unload()


def test_traffic_through_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server()
    backend = _backend(server, monkeypatch)
    backend.load()
    prompts = [Prompt(token_ids=[i + 1]) for i in range(5)]
    run = run_traffic(backend, prompts, {"pattern": "constant", "qps": 100}, 4, True, SAMPLED)
    assert run.info["requests"] == 5 and all(g.tokens_out == 4 for g in run.generations)
    assert [b["prompt"] for b in server.bodies[-5:]] == [f"{'x' * (i + 1)}" for i in range(5)]
    assert all(b["seed"] == 5 for b in server.bodies[-5:])
    backend.unload()


def test_flops_unknown_without_a_config(tmp_path: Any) -> None:
    missing = str(tmp_path / "gone.gguf")
    backend = OpenAIBackend({**REF, "kind": "gguf", "ref": missing}, {"openai": {"base_url": URL}})
    est = backend.flops_per_token(64)
    assert est.per_token is None and est.method == "unknown"
    assert "architecture is unknown" in est.note and "gone.gguf" in est.note
