"""The suite's ``vllm:`` block of the vLLM backend: its JSON Schema, part of the backend's
description (``harness.contract.descriptions``). Kept beside the backend module so that module
stays about the engine."""

from __future__ import annotations

from typing import Any

# The suite's `vllm:` block; the names are vLLM's EngineArgs fields (OPTION_ARGS).
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "vLLM engine arguments (vllm.LLM / AsyncEngineArgs). Not yet run on hardware by lembench."
    ),
    "properties": {
        "gpu_memory_utilization": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "max_model_len": {"type": "integer", "minimum": 1},
        "max_num_seqs": {"type": "integer", "minimum": 1},
        "max_num_batched_tokens": {"type": "integer", "minimum": 1},
        "enable_prefix_caching": {"type": "boolean"},
        "enable_chunked_prefill": {"type": "boolean"},
        "enforce_eager": {"type": "boolean"},
        "kv_cache_dtype": {"enum": ["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]},
        "quantization": {
            "enum": [
                "awq",
                "awq_marlin",
                "gptq",
                "gptq_marlin",
                "fp8",
                "bitsandbytes",
                "gguf",
                "compressed-tensors",
                "experts_int8",
                None,
            ],
        },
        "tensor_parallel_size": {"type": "integer", "minimum": 1},
        "pipeline_parallel_size": {"type": "integer", "minimum": 1},
        "swap_space": {"type": "number", "minimum": 0},
        "cpu_offload_gb": {"type": "number", "minimum": 0},
        "speculative_config": {
            "type": ["object", "null"],
            "description": (
                "Passed to vLLM as speculative_config, e.g. {method: ngram, "
                "num_speculative_tokens: 4, prompt_lookup_max: 4} or {model: ..., "
                "num_speculative_tokens: 5}."
            ),
        },
    },
}
