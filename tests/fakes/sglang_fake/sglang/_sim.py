"""The fake's deterministic model, shared by the Engine and the HTTP server.

Model: the next token after ``t`` is ``(t + 1) % vocab_size`` (greedy; sampling adds a seeded
offset) and token 2 is EOS, so a test picks when EOS comes with the last prompt token. Chunks carry
``stream_interval`` tokens (ServerArgs / SamplingParams), as SGLang's detokenizer batches them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

VOCAB = 64
EOS = 2
STEP_S = 0.0005

#: ServerArgs fields this fake knows (a subset of python/sglang/srt/server_args.py).
SERVER_ARGS = {
    "model_path", "tokenizer_path", "revision", "load_format", "skip_tokenizer_init", "dtype",
    "device", "base_gpu_id", "log_level", "mem_fraction_static", "context_length",
    "max_running_requests", "max_total_tokens", "chunked_prefill_size", "tp_size", "dp_size",
    "quantization", "kv_cache_dtype", "attention_backend", "schedule_policy",
    "disable_radix_cache", "disable_cuda_graph", "enable_torch_compile", "random_seed",
    "stream_interval", "trust_remote_code",
}  # fmt: skip
#: SamplingParams API fields (python/sglang/srt/sampling/sampling_params.py).
SAMPLING_FIELDS = {
    "max_new_tokens", "stop", "stop_token_ids", "stop_regex", "temperature", "top_p", "top_k",
    "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n",
    "json_schema", "regex", "ebnf", "structural_tag", "ignore_eos", "skip_special_tokens",
    "spaces_between_special_tokens", "no_stop_trim", "custom_params", "stream_interval",
    "logit_bias", "sampling_seed",
}  # fmt: skip
CALLS: list[dict[str, Any]] = []  # every request: input ids and sampling params, for tests


def check_sampling(params: dict[str, Any]) -> dict[str, Any]:
    """SamplingParams(**params) and its verify(): unknown names TypeError, bad values ValueError."""
    unknown = set(params) - SAMPLING_FIELDS
    if unknown:
        raise TypeError(f"Unexpected keyword argument {sorted(unknown)[0]!r}")
    p = {"max_new_tokens": 128, "temperature": 1.0, "top_k": -1, "ignore_eos": False, **params}
    if p["temperature"] < 0:
        raise ValueError("temperature must be a non-negative finite number")
    if p["top_k"] < 1 and p["top_k"] != -1:
        raise ValueError(f"top_k must be -1 (disable) or at least 1, got {p['top_k']}.")
    if p.get("min_new_tokens") and p["min_new_tokens"] > p["max_new_tokens"]:
        raise ValueError("min_new_tokens must be in [0, max_new_tokens]")
    return p


async def stream(
    rid: str, input_ids: list[int], params: dict[str, Any], interval: int
) -> AsyncIterator[dict[str, Any]]:
    """The chunks of one request, as the tokenizer manager yields them (cumulative text, ids and
    completion_tokens; finish_reason and e2e_latency on the last)."""
    p = check_sampling(params)
    CALLS.append({"input_ids": list(input_ids), "sampling_params": dict(params)})
    created = time.time()
    rng = random.Random(p.get("sampling_seed"))
    out: list[int] = []
    last = input_ids[-1]
    finish = None
    while finish is None:
        await asyncio.sleep(STEP_S)
        step = 1 if p["temperature"] == 0 else 1 + rng.randrange(3)
        last = (last + step) % VOCAB
        out.append(last)
        if last == EOS and not p["ignore_eos"]:
            finish = {"type": "stop", "matched": EOS}
        elif len(out) >= p["max_new_tokens"]:
            finish = {"type": "length", "length": p["max_new_tokens"]}
        if finish is None and len(out) % interval:
            continue
        meta = {"id": rid, "finish_reason": finish, "prompt_tokens": len(input_ids),
                "completion_tokens": len(out), "cached_tokens": 0}  # fmt: skip
        if finish is not None:
            meta["e2e_latency"] = time.time() - created
        yield {"text": "".join(f"<{t}>" for t in out), "output_ids": list(out), "meta_info": meta}
