"""The fake's deterministic "model" and engine core, shared by LLMEngine and AsyncLLM.

Model: the next token after ``t`` is ``(t + 1) % vocab_size`` (greedy) so a test chooses when EOS
comes by choosing the last prompt token. ``speculative_config.num_speculative_tokens`` = k makes a
step emit up to k + 1 tokens per request, as accepted drafts do. One "GPU": starting an engine
while another is alive fails like the real one does (no memory left for the KV cache).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind, SamplingParams

# Hub ids this fake "has"; anything else that is not a local folder or .gguf fails to load.
FAKE_HUB: dict[str, dict[str, Any]] = {
    "fake-org/tiny-llama": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 64,
        "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": True,
    },
}  # fmt: skip
LIVE: list[Any] = []  # engines holding the fake GPU
STARTS: list[dict[str, Any]] = []  # every engine start: kind and engine args, for tests
STEP_SECONDS = 0.0005


class FakeTokenizer:
    """Word-level tokenizer over ids 3..vocab-1 (0 pad, 1 bos, 2 eos), HF-tokenizer shaped."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.all_special_ids = [0, 1, 2]
        self.max_token_id = vocab_size - 1

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [3 + sum(map(ord, w)) % (self.vocab_size - 3) for w in text.split()]
        return ([1] if add_special_tokens else []) + ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return "".join(f"<{i}>" for i in ids if i not in skip)

    def get_vocab(self) -> dict[str, int]:
        return {f"<{i}>": i for i in range(self.vocab_size)}

    def get_added_vocab(self) -> dict[str, int]:
        return {"<extra>": self.vocab_size - 1}


@dataclass
class ModelConfig:
    hf_config: Any
    dtype: Any
    max_model_len: int
    skip_tokenizer_init: bool

    def get_vocab_size(self) -> int:
        return int(self.hf_config.vocab_size)


def _hf_config(model: str) -> dict[str, Any]:
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise OSError(f"{model} does not appear to have a file named config.json.")
        return json.loads((path / "config.json").read_text())
    if path.suffix == ".gguf":
        if not path.is_file():
            raise OSError(f"{model} does not exist")
        return FAKE_HUB["fake-org/tiny-llama"]
    if model in FAKE_HUB:
        return FAKE_HUB[model]
    raise OSError(
        f"{model} is not a local folder and is not a valid model identifier listed on "
        "'https://huggingface.co/models'"
    )


def start(engine_args: Any, kind: str) -> tuple[ModelConfig, FakeTokenizer | None]:
    """What the real engine does at start: resolve config, tokenizer, reserve the GPU."""
    import torch
    import transformers

    raw = _hf_config(engine_args.model)
    if LIVE or float(engine_args.gpu_memory_utilization) < 0.05:
        raise ValueError(
            "No available memory for the cache blocks. Try increasing "
            "`gpu_memory_utilization` when initializing the engine."
        )
    hf_config = transformers.AutoConfig.for_model(**raw)
    dtype = {"float16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
             "float32": torch.float32, "float": torch.float32, "auto": torch.bfloat16}[
        engine_args.dtype]  # fmt: skip
    max_len = engine_args.max_model_len or raw.get("max_position_embeddings", 2048)
    tokenizer = None
    if not engine_args.skip_tokenizer_init:
        source = engine_args.tokenizer or engine_args.model
        _hf_config(source)  # a tokenizer source must exist like a model does
        tokenizer = FakeTokenizer(hf_config.vocab_size)
    STARTS.append({"kind": kind, "args": engine_args})
    return ModelConfig(hf_config, dtype, max_len, engine_args.skip_tokenizer_init), tokenizer


@dataclass
class _Request:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    generated: list[int] = field(default_factory=list)
    sent: int = 0
    finish: str | None = None


class EngineCore:
    """A scheduler: up to max_num_seqs running requests, each advanced once per step."""

    def __init__(self, engine_args: Any, model_config: ModelConfig, tokenizer: Any) -> None:
        self.max_num_seqs = engine_args.max_num_seqs or 256
        spec = engine_args.speculative_config or {}
        self.per_step = 1 + int(spec.get("num_speculative_tokens", 0))
        self.vocab = model_config.get_vocab_size()
        eos = model_config.hf_config.eos_token_id
        self.eos = eos if isinstance(eos, int) else eos[0]
        self.tokenizer = tokenizer
        self.requests: dict[str, _Request] = {}
        self.dead = False

    def add(self, request_id: Any, prompt: Any, params: Any) -> None:
        if self.dead:
            raise RuntimeError("engine core is shut down")
        if not isinstance(request_id, str):
            raise TypeError(f"request_id must be a string, got {type(request_id)}")
        if not isinstance(params, SamplingParams):
            raise TypeError(f"params must be SamplingParams, got {type(params).__name__}")
        if not isinstance(prompt, dict) or "prompt_token_ids" not in prompt:
            raise TypeError("this fake takes TokensPrompt inputs only")
        ids = list(prompt["prompt_token_ids"])
        if not ids:
            raise ValueError("The decoder prompt cannot be empty")
        if max(ids) >= self.vocab:
            raise ValueError(f"Token id {max(ids)} is out of vocabulary")
        if request_id in self.requests:
            raise ValueError(f"request id {request_id} already running")
        self.requests[request_id] = _Request(request_id, ids, params.clone())

    def abort(self, request_ids: list[str]) -> None:
        for rid in request_ids:
            self.requests.pop(rid, None)

    def unfinished(self) -> bool:
        return bool(self.requests)

    def _next(self, req: _Request) -> int:
        last = (req.prompt_ids + req.generated)[-1]
        p = req.params
        if p.temperature < 1e-5:
            return (last + 1) % self.vocab
        rng = random.Random((p.seed or 0) * 1_000_003 + len(req.generated))
        return rng.randrange(self.vocab)

    def step(self) -> list[RequestOutput]:
        time.sleep(STEP_SECONDS)
        outputs = []
        for req in list(self.requests.values())[: self.max_num_seqs]:
            p = req.params
            for _ in range(self.per_step):
                token = self._next(req)
                req.generated.append(token)
                stop_ok = len(req.generated) > p.min_tokens
                if token == self.eos and not p.ignore_eos and stop_ok:
                    req.finish = "stop"
                elif len(req.generated) >= p.max_tokens:
                    req.finish = "length"
                if req.finish:
                    break
            out = self._output(req)
            if req.finish:
                del self.requests[req.request_id]
            if out is not None:
                outputs.append(out)
        return outputs

    def _output(self, req: _Request) -> RequestOutput | None:
        kind = req.params.output_kind
        if kind == RequestOutputKind.FINAL_ONLY and not req.finish:
            return None
        ids = req.generated[req.sent :] if kind == RequestOutputKind.DELTA else req.generated
        req.sent = len(req.generated)
        text = ""
        if self.tokenizer is not None and req.params.detokenize:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
        completion = CompletionOutput(0, text, list(ids), None, None, req.finish)
        return RequestOutput(req.request_id, None, req.prompt_ids, None, [completion],
                             req.finish is not None)  # fmt: skip
