"""SGLang backend: the offline ``sglang.Engine`` or a running server's native ``/generate``.

Written against SGLang's documented API (v0.5; the ``sglang`` image pins lmsysorg/sglang) and
unit-tested against a fake of it (tests/fakes/sglang_fake); not yet run on hardware by lembench.

- Offline (default): ``sglang.Engine(model_path=..., tp_size=..., dtype=..., ...)`` with the
  keyword arguments of ``ServerArgs`` (python/sglang/srt/server_args.py). The engine is built on
  harness.backends.aio's loop, so its tokenizer manager lives there, and every request is streamed
  with ``Engine.async_generate(input_ids=..., sampling_params=..., stream=True)``
  (python/sglang/srt/entrypoints/engine.py): a static batch submits its prompts together (SGLang's
  scheduler batches them), traffic submits one request at a time.
- Server (``sglang: {server_url: http://host:30000}``): ``POST /generate`` with ``stream: true``
  answers server-sent events ``data: {...}`` ending with ``data: [DONE]``
  (python/sglang/srt/entrypoints/http_server.py; docs: basic_usage/native_api). The meters see
  the harness's host, not necessarily the server's.

Each streamed chunk is ``{"text", "output_ids", "meta_info"}``; ``meta_info`` holds cumulative
``completion_tokens``, ``prompt_tokens`` and, once finished, ``finish_reason`` and
``e2e_latency`` (python/sglang/srt/managers/tokenizer_manager.py, ``_handle_batch_output``). The
tokens a chunk adds are stamped when it arrives on the host; counts are SGLang's own. sglang and
httpx are imported inside methods.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from harness.backends import aio
from harness.backends.base import (
    GREEDY,
    Backend,
    BackendOOM,
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
from harness.contract.descriptions import BackendDescription

INSTALL_HINT = "use the sglang image: lembench images build sglang"
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_VERSIONED = ("sglang", "torch", "transformers", "tokenizers")
#: Options of the client side (server mode), never passed to the engine.
CLIENT_OPTIONS = ("server_url", "timeout_s")
_COUNT = {"type": "integer", "minimum": 1}
#: The suite's `sglang:` block. Engine options keep ServerArgs' names (server_args.py), so
#: SGLang's docs apply unchanged.
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "SGLang engine arguments (sglang.Engine / ServerArgs), or a running server.",
    "properties": {
        "server_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "A running SGLang server (its native /generate); no engine is started.",
        },
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "description": "Per request."},
        "mem_fraction_static": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "context_length": _COUNT,
        "max_running_requests": _COUNT,
        "max_total_tokens": _COUNT,
        "chunked_prefill_size": {"type": "integer", "minimum": -1},
        "tp_size": _COUNT,
        "dp_size": _COUNT,
        "quantization": {
            "enum": ["awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "gguf",
                     "compressed-tensors", "w8a8_int8", "w8a8_fp8", None],
        },
        "kv_cache_dtype": {"enum": ["auto", "fp8_e5m2", "fp8_e4m3"]},
        "attention_backend": {"type": "string", "minLength": 1},
        "schedule_policy": {"enum": ["lpm", "random", "fcfs", "dfs-weight"]},
        "disable_radix_cache": {"type": "boolean"},
        "disable_cuda_graph": {"type": "boolean"},
        "enable_torch_compile": {"type": "boolean"},
        "random_seed": {"type": "integer"},
    },
}  # fmt: skip


def is_oom(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) reports an out-of-memory."""
    text = f"{exc} {exc.__cause__ or ''}".lower()
    return "out of memory" in text or "outofmemory" in text


# -- pure mappings (unit-tested) ----------------------------------------------------------------


def engine_kwargs(config: dict[str, Any], model_ref: dict[str, Any]) -> tuple[dict, dict]:
    """``sglang.Engine`` keyword arguments (ServerArgs fields) from an experiment, and the dummy
    weights' provenance. Options absent from ``config["sglang"]`` are not passed."""
    from harness.backends.vllm import dummy_source, model_source

    dummy: dict[str, Any] = {}
    if config.get("weights", "real") == "dummy":  # load_format="dummy": config.json only
        source, dummy = dummy_source(model_ref)
    else:
        source = model_source(model_ref)
    kwargs: dict[str, Any] = {"model_path": source.pop("model")}
    if "tokenizer" in source:
        kwargs["tokenizer_path"] = source.pop("tokenizer")
    kwargs.update(source)  # revision, load_format, skip_tokenizer_init
    kwargs["dtype"] = DTYPES[config.get("precision", "fp32")]
    device = str(config.get("device", "auto"))
    kwargs["device"] = "cpu" if device == "cpu" else "cuda"
    if device.startswith("cuda:"):
        kwargs["base_gpu_id"] = int(device.partition(":")[2])
    for option, value in (config.get("sglang") or {}).items():
        if option not in CLIENT_OPTIONS:
            kwargs[option] = value
    kwargs["log_level"] = "error"  # lembench's log is its events file, not SGLang's chatter
    return kwargs, dummy


def sampling_params(sampling: Sampling, max_new_tokens: int, exact: bool) -> dict[str, Any]:
    """SGLang ``sampling_params`` (python/sglang/srt/sampling/sampling_params.py).

    Greedy is ``temperature=0`` (SGLang turns it into top_k=1). ``exact``: ``ignore_eos`` so no
    stop token ends a request early (min_new_tokens would need a tokenizer, dummy weights lack
    one). lembench's ``top_k=0`` (off) is SGLang's ``-1``."""
    params: dict[str, Any] = {"max_new_tokens": max_new_tokens, "ignore_eos": exact}
    if not sampling.do_sample:
        params["temperature"] = 0.0
        return params
    params.update(
        temperature=float(sampling.temperature),
        top_p=float(sampling.top_p),
        top_k=int(sampling.top_k) or -1,
        min_p=float(sampling.min_p),
        repetition_penalty=float(sampling.repetition_penalty),
        sampling_seed=int(sampling.seed),
    )
    return params


def parse_event(line: str) -> dict[str, Any] | None:
    """One line of the /generate event stream: its JSON chunk, or None (blank lines, comments,
    ``[DONE]``). An ``error`` chunk raises RuntimeError with the server's message."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return None
    chunk = json.loads(data)
    if "error" in chunk:
        raise RuntimeError(f"SGLang server error: {chunk['error']}")
    return chunk


@dataclass
class Tally:
    """What one request's stream said so far: token arrival times and SGLang's counts."""

    t_start: float
    times: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    text: str | None = None
    finish_reason: Any = None
    e2e_latency_s: float | None = None

    def absorb(self, chunk: dict[str, Any], now: float) -> None:
        """Add a chunk: the tokens it adds (cumulative ``completion_tokens`` minus those seen)
        arrived ``now``."""
        meta = chunk.get("meta_info") or {}
        done = int(meta.get("completion_tokens", len(chunk.get("output_ids") or [])))
        self.times.extend([now] * max(done - len(self.times), 0))
        if meta.get("prompt_tokens") is not None:
            self.prompt_tokens = int(meta["prompt_tokens"])
        if chunk.get("text") is not None:
            self.text = str(chunk["text"])  # cumulative
        self.finish_reason = meta.get("finish_reason", self.finish_reason)
        if meta.get("e2e_latency") is not None:
            self.e2e_latency_s = float(meta["e2e_latency"])

    def generation(self, prompt: Prompt) -> Generation:
        return Generation(
            tokens_in=self.prompt_tokens
            if self.prompt_tokens is not None
            else len(prompt.token_ids),
            tokens_out=len(self.times),
            t_start=self.t_start,
            token_times=self.times,
            text=self.text,
        )


# -- the backend --------------------------------------------------------------------------------


class SGLangBackend(Backend):
    """SGLang: the offline Engine (streamed async_generate) or a server's native /generate."""

    description = BackendDescription(
        name="sglang",
        summary="SGLang: offline sglang.Engine or a running server's native /generate",
        options_schema=OPTIONS_SCHEMA,
        traffic=True,
        streaming=True,
        dummy_weights=True,
        quantisations=tuple(q for q in OPTIONS_SCHEMA["properties"]["quantization"]["enum"] if q),
        imports=("sglang",),
        distributions=_VERSIONED,
        image="sglang",
        cpu_image="sglang",
        install=INSTALL_HINT,
        engine_distribution="sglang",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        options = config.get("sglang") or {}
        self.server_url: str | None = (options.get("server_url") or "").rstrip("/") or None
        self.timeout_s = float(options.get("timeout_s") or 600.0)
        self._engine: Any = None  # sglang.Engine (offline)
        self._client: Any = None  # httpx.AsyncClient (server)
        self._kwargs: dict[str, Any] = {}
        self._tokenizer: Any = None
        self._hf_config: Any = None  # a PretrainedConfig or config.json dict, for FLOPs
        self._vocab: list[int] | None = None
        self.tallies: list[Tally] = []  # the last batch's, with SGLang's own e2e_latency

    # -- loading -------------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Start the engine (offline), or check the server (GET /get_model_info)."""
        t0 = time.perf_counter()
        info = self._connect() if self.server_url else self._start()
        load_time = time.perf_counter() - t0
        info.update(
            kind=self.model_ref["kind"],
            ref=self.model_ref["ref"],
            weights=self.config.get("weights", "real"),
            load_time_s=round(load_time, 3),
        )
        dtype = DTYPES[self.config.get("precision", "fp32")]
        asked = str(self.config.get("device", "auto"))
        device = (
            "server"
            if self.server_url
            else asked
            if asked.startswith("cuda")
            else self._kwargs["device"]
        )
        versions = {name: library_version(name) for name in _VERSIONED}
        return LoadInfo(
            device=device, dtype=dtype, load_time_s=load_time, model=info, versions=versions
        )

    def _start(self) -> dict[str, Any]:
        try:
            import sglang
        except ImportError as exc:
            raise BackendUnavailable(
                f"the sglang backend needs SGLang ({exc.name} is missing): {INSTALL_HINT}"
            ) from exc
        try:
            self._kwargs, dummy = engine_kwargs(self.config, self.model_ref)
        except (KeyError, ValueError) as exc:
            raise ModelLoadError(f"weights: dummy: {exc}") from exc

        async def build() -> Any:  # on aio's loop: Engine adopts the running loop
            return sglang.Engine(**self._kwargs)

        try:
            self._engine = aio.run(build())
        except Exception as exc:
            if is_oom(exc):
                raise BackendOOM(f"out of memory starting SGLang: {error_line(exc)}") from exc
            raise ModelLoadError(
                f"SGLang cannot load {self.model_ref.get('ref')!r}: {error_line(exc)}"
            ) from exc
        manager = self._engine.tokenizer_manager
        self._tokenizer = manager.tokenizer  # None with skip_tokenizer_init (dummy weights)
        self._hf_config = manager.model_config.hf_config
        return {
            "engine": "offline",
            "engine_args": json.loads(json.dumps(self._kwargs, default=str)),
            **dummy,
        }

    def _connect(self) -> dict[str, Any]:
        try:
            import httpx
        except ImportError as exc:
            raise BackendUnavailable("sglang.server_url needs httpx: pip install httpx") from exc
        if self.config.get("weights") == "dummy":
            raise ModelLoadError(
                "weights: dummy does not apply to a running server (it loaded "
                "its own weights): remove it or leave out sglang.server_url"
            )
        from harness.backends.openai_compat import load_tokenizer
        from harness.models.dummy_weights import model_config

        async def ask() -> dict[str, Any]:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
            reply = await self._client.get(f"{self.server_url}/get_model_info")
            reply.raise_for_status()
            return dict(reply.json())

        try:
            served = aio.run(ask())
        except Exception as exc:
            raise BackendUnavailable(
                f"no SGLang server at {self.server_url}: {error_line(exc)}"
            ) from exc
        self._tokenizer = load_tokenizer(self.model_ref)  # the server's model, on this side
        try:
            self._hf_config = model_config(self.model_ref)[0]
        except (KeyError, ValueError):
            self._hf_config = None  # FLOPs unknown; said in flops_per_token
        return {"engine": "server", "server_url": self.server_url, "server_model": served}

    def unload(self) -> None:
        """Shut the engine down (its subprocesses) or close the HTTP client."""
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
        if self._client is not None:
            aio.run(self._client.aclose())
            self._client = None

    # -- tokens --------------------------------------------------------------------------------

    def _require(self) -> None:
        if self._engine is None and self._client is None:
            raise RuntimeError("SGLangBackend: call load() first")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (the model's tokenizer)."""
        self._require()
        if self._tokenizer is None:
            raise ValueError(
                "this sglang model runs without a tokenizer (weights: dummy): text "
                "workloads need model.tokenizer; synthetic workloads do not"
            )
        if self.server_url:  # harness.backends.openai_compat's tokenizer wrappers
            return list(self._tokenizer.encode(text))
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def vocab_token_ids(self) -> list[int]:
        """Ordinary token ids of the tokenizer, or without one every id of the config's vocab
        minus bos/eos/pad."""
        self._require()
        if self._vocab is None:
            if self.server_url:
                self._vocab = list(self._tokenizer.vocab)
            elif self._tokenizer is None:
                from harness.models.dummy_weights import dummy_vocab_token_ids

                self._vocab = dummy_vocab_token_ids(self._hf_config.to_dict())
            else:
                rows = int(self._hf_config.vocab_size)
                self._vocab = ordinary_token_ids(self._tokenizer, rows)
        return self._vocab

    # -- generation ----------------------------------------------------------------------------

    async def _chunks(self, ids: list[int], params: dict[str, Any]) -> AsyncIterator[dict]:
        """The streamed chunks of one request, from the engine or the server."""
        if self._engine is not None:
            stream = await self._engine.async_generate(
                input_ids=ids, sampling_params=params, stream=True
            )
            async for chunk in stream:
                yield chunk
            return
        body = {"input_ids": ids, "sampling_params": params, "stream": True}
        async with self._client.stream("POST", f"{self.server_url}/generate", json=body) as reply:
            if reply.status_code != 200:
                text = (await reply.aread()).decode("utf-8", "replace")
                raise RuntimeError(f"SGLang /generate answered {reply.status_code}: {text[:300]}")
            async for line in reply.aiter_lines():
                chunk = parse_event(line)
                if chunk is not None:
                    yield chunk

    async def _request(self, prompt: Prompt, params: dict[str, Any], t_start: float) -> Tally:
        if not prompt.token_ids:
            raise ValueError("every prompt needs at least one token")
        tally = Tally(t_start)
        try:
            async for chunk in self._chunks(list(prompt.token_ids), params):
                tally.absorb(chunk, time.perf_counter())
        except Exception as exc:
            if is_oom(exc):
                raise BackendOOM(f"out of memory in SGLang: {error_line(exc)}") from exc
            raise
        return tally

    def generate(
        self, prompts: list[Prompt], max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> list[Generation]:
        """One static batch: every prompt submitted at once (``t_start``), each streamed."""
        self._require()
        params = sampling_params(sampling, max_new_tokens, exact)

        async def batch() -> list[Tally]:
            t_start = time.perf_counter()
            tasks = [asyncio.ensure_future(self._request(p, params, t_start)) for p in prompts]
            try:
                return list(await asyncio.gather(*tasks))
            finally:  # one failed request ends the batch: stop streaming the others
                for task in tasks:
                    task.cancel()

        self.tallies = aio.run(batch()) if prompts else []
        return [t.generation(p) for t, p in zip(self.tallies, prompts, strict=True)]

    async def agenerate(
        self, prompt: Prompt, max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> Generation:
        """Submit one request now and stream it (runs on harness.backends.aio's loop)."""
        self._require()
        params = sampling_params(sampling, max_new_tokens, exact)
        tally = await self._request(prompt, params, time.perf_counter())
        return tally.generation(prompt)

    # -- FLOPs ---------------------------------------------------------------------------------

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """Forward FLOPs per token from the model's HF config (see ``estimate_from_config``)."""
        self._require()
        if self._hf_config is None:
            return FlopsEstimate(
                None,
                "unavailable",
                None,
                sequence_length,
                "the server's model architecture is unknown here",
            )
        from harness.window.flops import estimate_from_config

        return estimate_from_config(self._hf_config, sequence_length)
