"""Any OpenAI-compatible server (vLLM serve, llama-server, llama-cpp-python, Ollama, LM Studio).

Requests are streamed (``"stream": true``, server-sent events) with httpx's ``AsyncClient`` on the
process-wide loop of ``harness.backends.aio``. ``token_times`` are the arrival times of the chunks
that carry
output text; token counts come from the server's ``usage`` when it sends one in the stream, else
from the tokenizer of the experiment's model. Synthetic prompts are token ids: they are sent as
their detokenised text, and the server tokenises them again.

The meters measure the machine the harness runs on, not necessarily the server: energy figures
only mean something when the server runs on the harness's host (``energy_scope`` says so).
httpx, transformers and llama_cpp are imported inside ``load()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness.backends import aio
from harness.backends.base import (
    GREEDY,
    Backend,
    BackendUnavailable,
    FlopsEstimate,
    Generation,
    LoadInfo,
    ModelLoadError,
    Prompt,
    Sampling,
    error_line,
    library_version,
    ordinary_token_ids,
)
from harness.backends.openai_compat_options import OPTIONS_SCHEMA
from harness.contract.descriptions import BackendDescription
from harness.models.weight_bytes import served_gguf_bytes

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install httpx (the lembench extra 'openai')"
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_EXACT = ("ignore_eos", "logit_bias")
#: logit_bias range of the OpenAI API is -100..100; -100 bans a token.
BAN = -100
ENERGY_SCOPE = (
    "meters measure the host running the harness, not the server process: energy is the "
    "server's only when it runs on this host"
)
_VERSIONED = ("httpx", "transformers", "tokenizers", "llama_cpp_python")


# -- option mapping (pure) ------------------------------------------------------------------------
def engine_kwargs(config: dict[str, Any], model_ref: dict[str, Any]) -> dict[str, Any]:
    """The effective client options (defaults filled) from ``config["openai"]``.

    ``exact_output`` becomes the list of mechanisms used when a workload asks for exact output
    lengths (default: ``ignore_eos`` and ``logit_bias`` together)."""
    opts = config.get("openai") or {}
    exact = opts.get("exact_output")
    return {
        "base_url": str(opts["base_url"]).rstrip("/"),
        "model": opts.get("model") or model_ref["ref"],
        "api": opts.get("api", "completions"),
        "api_key_env": opts.get("api_key_env"),
        "timeout_s": float(opts.get("timeout_s", DEFAULT_TIMEOUT_S)),
        "exact_output": [exact] if exact else list(DEFAULT_EXACT),
        "stream_usage": bool(opts.get("stream_usage", True)),
    }


def request_body(
    kw: dict[str, Any],
    text: str,
    max_new_tokens: int,
    exact: bool,
    sampling: Sampling,
    eos_ids: list[int],
) -> dict[str, Any]:
    """The JSON body of one streamed request.

    Standard OpenAI fields: model, prompt | messages, max_tokens, temperature, top_p, seed, stream,
    stream_options.include_usage, logit_bias. Extra fields the OpenAI API lacks, read by vLLM and
    llama.cpp servers and ignored by most others: ignore_eos, min_tokens, top_k, min_p,
    repetition_penalty (vLLM), repeat_penalty (llama.cpp)."""
    body: dict[str, Any] = {"model": kw["model"], "max_tokens": max_new_tokens, "stream": True}
    if kw["api"] == "chat":
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    if kw["stream_usage"]:
        body["stream_options"] = {"include_usage": True}
    if sampling.do_sample:
        body.update(temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed)
        if sampling.top_k > 0:
            body["top_k"] = sampling.top_k
        if sampling.min_p > 0:
            body["min_p"] = sampling.min_p
        if sampling.repetition_penalty != 1.0:
            body["repetition_penalty"] = sampling.repetition_penalty
            body["repeat_penalty"] = sampling.repetition_penalty
    else:
        # Temperature 0 is greedy in the OpenAI API (vLLM, llama.cpp: argmax); top_p 1 so no
        # server-side default filter is mixed in.
        body.update(temperature=0.0, top_p=1.0)
    if exact:
        if "ignore_eos" in kw["exact_output"]:
            body["ignore_eos"] = True
        if "min_tokens" in kw["exact_output"]:
            body["min_tokens"] = max_new_tokens
        if "logit_bias" in kw["exact_output"] and eos_ids:
            body["logit_bias"] = {str(i): BAN for i in eos_ids}
    return body


def engine_scheduled(
    timings: dict[str, Any] | None, t_first: float | None, t_start: float
) -> float | None:
    """When the server began this request's prefill on our clock: the first token minus
    llama.cpp server's ``timings.prompt_ms`` (sent on every stream's last chunk, server-task.cpp
    ``to_json_oaicompat_chat_stream``); before it the request was queued. None without it."""
    prompt_ms = (timings or {}).get("prompt_ms")
    if t_first is None or not isinstance(prompt_ms, int | float) or prompt_ms < 0:
        return None
    return max(t_start, t_first - float(prompt_ms) / 1000.0)


def parse_chunk(chunk: dict[str, Any], api: str) -> tuple[str, dict[str, Any] | None, str | None]:
    """(output text, usage or None, finish_reason or None) of one streamed chunk."""
    if "error" in chunk:
        err = chunk["error"]
        message = err.get("message") if isinstance(err, dict) else err
        raise RuntimeError(f"server error in stream: {message}")
    text, finish = "", None
    for choice in chunk.get("choices") or []:
        # chat streams deltas (the first one only a role, content None); completions stream text
        delta = choice.get("delta") or {}
        piece = delta.get("content") if api == "chat" else choice.get("text")
        text += piece or ""
        finish = choice.get("finish_reason") or finish
    return text, chunk.get("usage") or None, finish


# -- tokenizers ----------------------------------------------------------------------------------
class _LlamaVocab:
    """llama.cpp's tokenizer of a GGUF file (vocab_only: no weights loaded, fast)."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        self.source = f"llama_cpp vocab_only {path.name}"
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        n = self.llm.n_vocab()
        self.eos_ids = sorted(i for i in range(n) if llama_cpp.llama_vocab_is_eog(vocab, i))
        normal = llama_cpp.LLAMA_TOKEN_ATTR_NORMAL
        self.vocab = [i for i in range(n) if llama_cpp.llama_vocab_get_attr(vocab, i) & normal]

    def encode(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def decode(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")


class _HFTokenizer:
    """A transformers tokenizer (Hub id, local folder, or a GGUF file's embedded tokenizer)."""

    def __init__(self, source: str, **kwargs: Any) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(source, **kwargs)
        self.source = f"transformers {source}" + (f" ({kwargs})" if kwargs else "")
        eos = self.tok.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else sorted(eos or [])
        self.vocab = ordinary_token_ids(self.tok)

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return str(self.tok.decode(ids, skip_special_tokens=False))


def load_tokenizer(model_ref: dict[str, Any]) -> Any:
    """The tokenizer the experiment's model gives: ``model.tokenizer`` if set; a GGUF file's
    through llama_cpp (vocab only) when importable, else through transformers; else the Hub id or
    local folder through transformers."""
    from harness.models.refs import local_file

    if model_ref.get("tokenizer"):
        return _HFTokenizer(model_ref["tokenizer"])
    gguf = local_file(model_ref)
    if gguf is None and model_ref["kind"] == "path" and model_ref.get("gguf_file"):
        gguf = Path(model_ref["ref"]) / model_ref["gguf_file"]
    if gguf is not None:
        try:
            import llama_cpp  # noqa: F401 - availability check
        except ImportError:
            return _HFTokenizer(str(gguf.parent), gguf_file=gguf.name)
        return _LlamaVocab(gguf)
    extra = {"revision": model_ref["revision"]} if model_ref.get("revision") else {}
    return _HFTokenizer(model_ref["ref"], **extra)


# -- the backend ---------------------------------------------------------------------------------
class OpenAIBackend(Backend):
    """Streams completions from an OpenAI-compatible HTTP server."""

    description = BackendDescription(
        name="openai",
        summary="any OpenAI-compatible server (Ollama, LM Studio, llama-server, vLLM serve, TGI)",
        options_schema=OPTIONS_SCHEMA,
        traffic=True,
        streaming=True,
        imports=("httpx",),
        distributions=_VERSIONED,
        network=True,  # it talks to a server
        tested_on_hardware=True,
        install="./setup.sh (installs httpx)",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self.kw: dict[str, Any] = {}
        self.tokenizer: Any = None
        self._client: Any = None
        self._httpx: Any = None
        self._headers: dict[str, str] = {}
        #: httpx transport override (None: real network); tests pass an ``httpx.MockTransport``.
        self.transport: Any = None
        self._flops_model: tuple[Any, Any] | None = None
        #: How each request's tokens were counted ("server_usage" | "tokenizer" | "chunks").
        self.count_sources: Counter[str] = Counter()
        #: Requests with exact output asked for whose length the server did not honour.
        self.exact_violations = 0
        #: Streams that ended without a finish_reason (the server interrupted them).
        self.unfinished = 0

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> LoadInfo:
        """Check the server and the model name (GET /models), load the tokenizer, and send one
        short probe request to learn how the server reports token counts."""
        try:
            import httpx
        except ImportError as exc:
            raise BackendUnavailable(f"the openai backend needs httpx: {INSTALL_HINT}") from exc
        self._httpx = httpx
        if self.config.get("weights") == "dummy":
            raise ModelLoadError(
                "weights: dummy does not apply to the openai backend (the server loads its own "
                "weights): remove it or use a backend that loads the model itself"
            )
        self.kw = kw = engine_kwargs(self.config, self.model_ref)
        if kw["api_key_env"]:
            key = os.environ.get(kw["api_key_env"])
            if not key:
                raise BackendUnavailable(
                    f"openai.api_key_env names ${kw['api_key_env']}, which is not set"
                )
            self._headers = {"Authorization": f"Bearer {key}"}  # never logged or stored
        t0 = time.perf_counter()
        served = aio.run(self._list_models())
        ids = [m.get("id") for m in served]
        if kw["model"] not in ids:
            raise ModelLoadError(
                f"the server at {kw['base_url']} does not serve model {kw['model']!r} (it serves: "
                f"{', '.join(map(str, ids)) or 'nothing'}); set openai.model to one of them"
            )
        tok_error = None
        try:
            self.tokenizer = load_tokenizer(self.model_ref)
        except Exception as exc:  # no tokenizer: counts come from the server, prompts need text
            tok_error = error_line(exc, 300)
            log.warning("openai backend: no tokenizer for %s: %s", self.model_ref["ref"], tok_error)
        probe = aio.run(
            self.agenerate(Prompt(token_ids=[], text="Hello"), 2, False), kw["timeout_s"]
        )
        load_time = time.perf_counter() - t0
        counts = self.count_sources.most_common(1)[0][0] if self.count_sources else "chunks"
        self.count_sources.clear()
        model = {
            "kind": self.model_ref["kind"],
            "ref": self.model_ref["ref"],
            "served_model": kw["model"],
            "server_model_card": next(m for m in served if m.get("id") == kw["model"]),
            "engine_args": dict(kw),
            "token_counts": counts,
            "tokens_in_source": "server prompt_tokens" if counts == "server_usage" else counts,
            "energy_scope": ENERGY_SCOPE,
            "tokenizer": None if self.tokenizer is None else self.tokenizer.source,
            "tokenizer_error": tok_error,
            "probe": {"tokens_out": probe.tokens_out, "chunks": len(probe.token_times)},
            "weight_bytes": served_gguf_bytes(self.model_ref),  # MBU: the GGUF's stored bytes
        }
        return LoadInfo(
            device=f"server {kw['base_url']}",
            dtype="server-defined",
            load_time_s=load_time,
            model=model,
            versions={name: library_version(name) for name in _VERSIONED},
        )

    def _new_client(self) -> Any:
        httpx = self._httpx
        return httpx.AsyncClient(
            headers=self._headers,
            timeout=httpx.Timeout(self.kw["timeout_s"]),
            # No pool cap: a capped pool would queue requests on the client side unseen and
            # distort the traffic pattern (httpx's default is 100 connections).
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            transport=self.transport,
        )

    async def _list_models(self) -> list[dict[str, Any]]:
        httpx, url = self._httpx, f"{self.kw['base_url']}/models"
        if self._client is None:
            self._client = (
                self._new_client()
            )  # created on harness.backends.aio's loop, used only there
        try:
            resp = await self._client.get(url, timeout=min(self.kw["timeout_s"], 30.0))
        except httpx.ConnectError as exc:
            raise BackendUnavailable(
                f"no server at {self.kw['base_url']} ({error_line(exc, 300)})"
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"server at {url} did not answer: {error_line(exc, 300)}"
            ) from exc
        if resp.status_code in (401, 403):
            raise BackendUnavailable(
                f"server at {url} refused the request (HTTP {resp.status_code}): check the API key "
                "(openai.api_key_env)"
            )
        if resp.status_code != 200:
            raise BackendUnavailable(
                f"GET {url} answered HTTP {resp.status_code} (base_url must end with /v1): "
                f"{resp.text[:200]}"
            )
        try:
            data = resp.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendUnavailable(
                f"GET {url} is not an OpenAI model list: {resp.text[:200]}"
            ) from exc
        return [m for m in data if isinstance(m, dict)]

    def unload(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            try:
                aio.run(client.aclose(), 30)
            except Exception:  # the server may be gone already; nothing to release then
                log.debug("closing the HTTP client failed", exc_info=True)

    # -- tokens ---------------------------------------------------------------------------------
    def _tok(self) -> Any:
        if self.tokenizer is None:
            raise RuntimeError(
                "the openai backend has no tokenizer for this model: set model.tokenizer (a Hub "
                "id or local folder) so prompts can be built and counted"
            )
        return self.tokenizer

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (the model's tokenizer)."""
        return self._tok().encode(text)

    def vocab_token_ids(self) -> list[int]:
        """Ordinary token ids of the tokenizer (special and control tokens left out)."""
        return list(self._tok().vocab)

    def _prompt_text(self, prompt: Prompt) -> str:
        # Text workloads keep their text; synthetic token ids are detokenised (the server
        # re-tokenises, so its prompt_tokens may differ slightly from len(token_ids)).
        return prompt.text if prompt.text is not None else self._tok().decode(prompt.token_ids)

    # -- generation -----------------------------------------------------------------------------
    def generate(
        self, prompts: list[Prompt], max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> list[Generation]:
        """All prompts submitted at once and awaited together: the server batches concurrent
        requests itself. ``t_start`` is each request's own submission time."""
        from harness.workloads.traffic import serve_together

        return serve_together(self, prompts, max_new_tokens, exact, sampling) if prompts else []

    async def agenerate(
        self, prompt: Prompt, max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> Generation:
        """One streamed request. ``token_times``: arrival of each chunk carrying output text (a
        chunk may carry several tokens; nothing is spread over them). ``tokens_out``: the server's
        usage.completion_tokens, else the tokenizer's count of the text, else the chunk count."""
        if self._client is None:
            self._client = self._new_client()
        httpx, kw = self._httpx, self.kw
        text = self._prompt_text(prompt)
        eos = list(self.tokenizer.eos_ids) if self.tokenizer is not None else []
        body = request_body(kw, text, max_new_tokens, exact, sampling, eos)
        url = kw["base_url"] + ("/chat/completions" if kw["api"] == "chat" else "/completions")
        times: list[float] = []
        pieces: list[str] = []
        usage: dict[str, Any] | None = None
        finish: str | None = None
        timings: dict[str, Any] | None = None  # llama.cpp server's per-request timings
        t_start = time.perf_counter()
        try:
            async with asyncio.timeout(kw["timeout_s"]):
                async with self._client.stream("POST", url, json=body) as resp:
                    if resp.status_code != 200:
                        detail = (await resp.aread()).decode("utf-8", "replace")[:300]
                        raise RuntimeError(f"POST {url}: HTTP {resp.status_code}: {detail}")
                    async for line in resp.aiter_lines():
                        now = time.perf_counter()  # before parsing: when the bytes arrived
                        if not line.startswith("data:"):
                            continue  # blank separators, comments/pings, event: lines
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            break
                        chunk = json.loads(payload)
                        piece, chunk_usage, chunk_finish = parse_chunk(chunk, kw["api"])
                        timings = chunk.get("timings") or timings
                        if piece:
                            times.append(now)
                            pieces.append(piece)
                        usage = chunk_usage or usage
                        finish = chunk_finish or finish
        except TimeoutError as exc:
            raise RuntimeError(f"request to {url} timed out after {kw['timeout_s']} s") from exc
        except httpx.HTTPError as exc:
            raise RuntimeError(f"request to {url} failed: {error_line(exc, 300)}") from exc
        out_text = "".join(pieces)
        if finish is None:
            # The stream ended without a finish_reason: the server cut the request short (e.g.
            # llama-cpp-python's server with interrupt_requests, its default, under concurrency).
            self.unfinished += 1
            log.warning("stream from %s ended without a finish_reason (request cut short)", url)
        tokens_out, tokens_in, source = self._count(usage, out_text, text, len(times))
        self.count_sources[source] += 1
        if exact and tokens_out != max_new_tokens:
            self.exact_violations += 1
            if self.exact_violations == 1:  # once per load: the result's checks warn per window
                log.warning(
                    "server produced %d tokens, not the exact %d asked for (finish_reason %s, "
                    "exact_output %s)", tokens_out, max_new_tokens, finish, kw["exact_output"],
                )  # fmt: skip
        scheduled = engine_scheduled(timings, times[0] if times else None, t_start)
        return Generation(tokens_in, tokens_out, t_start, times, out_text, scheduled)

    def _count(
        self, usage: dict[str, Any] | None, out_text: str, prompt_text: str, chunks: int
    ) -> tuple[int, int, str]:
        """(tokens_out, tokens_in, how counted): the server's usage when present, else the
        tokenizer (re-encoding texts), else the number of text chunks and 0 prompt tokens."""
        if usage and usage.get("completion_tokens") is not None:
            return (
                int(usage["completion_tokens"]),
                int(usage.get("prompt_tokens") or 0),
                "server_usage",
            )
        if self.tokenizer is not None:
            return len(self.encode(out_text)), len(self.encode(prompt_text)), "tokenizer"
        return chunks, 0, "chunks"

    # -- FLOPs ----------------------------------------------------------------------------------
    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """Analytical FLOPs from the architecture of the experiment's model (its config on the
        client side, built on PyTorch's meta device: no weights), or unknown."""
        from harness.window.flops import attention_flops_per_token, count_params

        try:
            if self._flops_model is None:
                self._flops_model = self._meta_model()
            model, config = self._flops_model
            embed, head = model.get_input_embeddings(), model.get_output_embeddings()
            params = count_params(model)
            n = params - int(embed.weight.numel())
            # Identity, not data_ptr: meta tensors have no storage to compare.
            if head is not None and head.weight is embed.weight:
                n += int(head.weight.numel())
            attention = attention_flops_per_token(config, sequence_length)
        except Exception as exc:  # no config for this model: say so, never invent a number
            return FlopsEstimate(
                None, "unknown", None, sequence_length,
                f"the server's model architecture is unknown here ({error_line(exc, 300)})",
            )  # fmt: skip
        note = (
            f"analytical 2*N_matmul + 2*n_layers*s*d_attn from the client-side config of "
            f"{self.model_ref['ref']!r} (assumes the server runs this architecture): "
            f"N_matmul={n}, attention {attention:.4g}/token at s={sequence_length}"
        )
        return FlopsEstimate(2.0 * n + attention, "analytical", params, sequence_length, note)

    def _meta_model(self) -> tuple[Any, Any]:
        from harness.models.refs import local_file

        ref = self.model_ref
        gguf = local_file(ref)
        if gguf is not None and not gguf.is_file():
            raise FileNotFoundError(f"GGUF file {gguf} does not exist")
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        if gguf is not None:
            config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        else:
            extra = {k: ref[k] for k in ("revision", "gguf_file") if ref.get(k)}
            config = AutoConfig.from_pretrained(ref["ref"], **extra)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return model, config
