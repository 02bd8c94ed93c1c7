"""Fake ``tensorrt_llm.llmapi.llm``: the two LLM flows, their pydantic args, streamed outputs."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tensorrt_llm import _state
from tensorrt_llm.llmapi import BuildConfig, KvCacheConfig, QuantConfig
from tensorrt_llm.llmapi.sampling import SamplingParams


class BaseLlmArgs(BaseModel):
    """Fields common to both flows (1.0 BaseLlmArgs), ``extra="forbid"`` like the real one."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: str | Path
    tokenizer: str | Path | None = None
    tokenizer_mode: Literal["auto", "slow"] = "auto"
    skip_tokenizer_init: bool = False
    trust_remote_code: bool = False
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    revision: str | None = None
    tokenizer_revision: str | None = None
    pipeline_parallel_size: int = 1
    kv_cache_config: KvCacheConfig = Field(default_factory=KvCacheConfig)
    max_batch_size: int | None = 2048
    max_input_len: int | None = 1024
    max_seq_len: int | None = None
    max_beam_width: int | None = 1
    max_num_tokens: int | None = 8192

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        if v not in ("auto", "float16", "bfloat16", "float32"):
            raise ValueError(f"unsupported dtype {v!r}")
        return v


class TrtLlmArgs(BaseLlmArgs):
    """TensorRT flow: builds an engine from build_config / quant_config."""

    load_format: Literal["auto", "dummy"] = "auto"
    workspace: str | None = None
    enable_build_cache: bool = False
    fast_build: bool = False
    build_config: BuildConfig | None = None
    quant_config: QuantConfig = Field(default_factory=QuantConfig)

    @model_validator(mode="after")
    def _kv_dtype(self) -> TrtLlmArgs:
        if self.kv_cache_config.dtype != "auto":
            raise ValueError("KvCacheConfig.dtype is not supported by the TensorRT backend.")
        return self


class TorchLlmArgs(BaseLlmArgs):
    """PyTorch flow: no build_config or quant_config fields (they are TrtLlmArgs only)."""

    load_format: str | int = "AUTO"

    @field_validator("load_format")
    @classmethod
    def _load_format(cls, v: str | int) -> str:
        name = str(v).upper()
        if name not in ("AUTO", "DUMMY", "VISION_ONLY"):
            raise ValueError(f"Invalid LoadFormat: {v}")
        return name


@dataclass
class CompletionOutput:
    """One sequence of a request; ``token_ids`` is cumulative while streaming."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class _Snapshot:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool


class RequestOutput:
    """What generate_async returns: awaitable (``aresult``) and async-iterable when streaming."""

    def __init__(self, prompt: list[int], tokens: list[int], finish: str, text: Any) -> None:
        self.prompt_token_ids = prompt
        self._tokens = tokens
        self._finish = finish
        self._text = text
        self.outputs = [CompletionOutput(0)]
        self.finished = False

    def _snapshot(self, n: int) -> _Snapshot:
        done = n == len(self._tokens)
        out = CompletionOutput(
            0, self._text(self._tokens[:n]), list(self._tokens[:n]), self._finish if done else None
        )
        return _Snapshot(self.prompt_token_ids, [out], done)

    def __aiter__(self) -> RequestOutput:
        asyncio.get_running_loop()  # the real one binds its queue to the running loop
        self._n = 0
        return self

    async def __anext__(self) -> _Snapshot:
        if self._n >= len(self._tokens):
            raise StopAsyncIteration
        await asyncio.sleep(0.001)  # one decoding step
        self._n += 1
        snap = self._snapshot(self._n)
        self.outputs, self.finished = snap.outputs, snap.finished
        return snap

    async def aresult(self) -> RequestOutput:
        snap = self._snapshot(len(self._tokens))
        self.outputs, self.finished = snap.outputs, True
        return self


class _FakeTokenizer:
    """Stand-in for TRT-LLM's TransformersTokenizer: only what the fake needs."""

    eos_token_id = 2

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"t{i}" for i in ids)


class _BaseLLM:
    _args_cls: type = BaseLlmArgs
    _flow = ""

    def __init__(self, model: str | Path, **kwargs: Any) -> None:
        if _state.fail_on_init is not None:
            exc, _state.fail_on_init = _state.fail_on_init, None
            raise exc
        self.args = self._args_cls(model=model, **kwargs)
        folder = Path(self.args.model)
        if not (folder / "config.json").is_file():
            # The real one would try the Hub here; the fake machines have no network.
            raise OSError(f"{model} is not a local model folder and the Hub is unreachable")
        self._config = json.loads((folder / "config.json").read_text())
        self.tokenizer = None if self.args.skip_tokenizer_init else _FakeTokenizer()
        self._shutdown = False
        _state.constructed.append((self._flow, self.args))

    def generate_async(
        self,
        inputs: Any,
        sampling_params: SamplingParams | None = None,
        lora_request: Any = None,
        prompt_adapter_request: Any = None,
        streaming: bool = False,
        kv_cache_retention_config: Any = None,
        disaggregated_params: Any = None,
        scheduling_params: Any = None,
        cache_salt: str | None = None,
    ) -> RequestOutput:
        """Submit one request (a list of token ids or a text prompt)."""
        if self._shutdown:
            raise RuntimeError("LLM is shutting down")
        if _state.fail_on_generate is not None:
            exc, _state.fail_on_generate = _state.fail_on_generate, None
            raise exc
        params = sampling_params or SamplingParams()
        if not isinstance(params, SamplingParams):
            raise TypeError("sampling_params must be a SamplingParams")
        if params.end_id is None:
            if self.tokenizer is None:
                raise ValueError(
                    "tokenizer is required to reset end_id if it is None, or you can explicitly "
                    "specify the end_id for sampling_params"
                )
            params.end_id = self.tokenizer.eos_token_id
        if not isinstance(inputs, list) or not all(isinstance(i, int) for i in inputs):
            raise TypeError("the fake accepts prompt token ids only")
        _state.requests.append(params)
        vocab = int(self._config.get("vocab_size", 1000))
        tokens: list[int] = []
        finish = "length"
        for step in range(params.max_tokens):
            token = (inputs[-1] + step + 1) % vocab
            if _state.eos_after is not None and step == _state.eos_after:
                token = params.end_id
            tokens.append(token)
            reached_min = params.min_tokens is None or len(tokens) >= params.min_tokens
            if token == params.end_id and not params.ignore_eos and reached_min:
                finish = "stop"
                break
        detok = self.tokenizer.decode if (self.tokenizer and params.detokenize) else (lambda _: "")
        return RequestOutput(list(inputs), tokens, finish, detok)

    def shutdown(self) -> None:
        """Stop the executor."""
        self._shutdown = True


class _TorchLLM(_BaseLLM):
    _args_cls = TorchLlmArgs
    _flow = "pytorch"


class _TrtLLM(_BaseLLM):
    _args_cls = TrtLlmArgs
    _flow = "tensorrt"

    def __init__(self, model: str | Path, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.engine_loaded = bool(self._config.get("_fake_engine"))

    def save(self, engine_dir: str) -> None:
        """Save the built engine (config.json + rank0.engine) to ``engine_dir``."""
        folder = Path(engine_dir)
        folder.mkdir(parents=True, exist_ok=True)
        config = {**self._config, "_fake_engine": True, "dtype": self.args.dtype}
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "rank0.engine").write_bytes(b"fake engine")
        _state.saved.append(str(folder))


class LLM(_TorchLLM):
    """tensorrt_llm.LLM: the PyTorch flow in 1.0."""
