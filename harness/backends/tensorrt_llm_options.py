"""The suite's ``tensorrt:`` block of the TensorRT-LLM backend: its JSON Schema, part of the
backend's description (``harness.contract.descriptions``). Kept beside the backend module so
that module stays about the engine."""

from __future__ import annotations

from typing import Any

# The suite's `tensorrt:` block (build options go into the engine cache key).
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "TensorRT-LLM LLM API build and runtime options. Not yet run on hardware by lembench."
    ),
    "properties": {
        "max_batch_size": {"type": "integer", "minimum": 1},
        "max_input_len": {"type": "integer", "minimum": 1},
        "max_seq_len": {"type": "integer", "minimum": 1},
        "max_num_tokens": {"type": "integer", "minimum": 1},
        "tp_size": {"type": "integer", "minimum": 1},
        "pp_size": {"type": "integer", "minimum": 1},
        "quantization": {
            "enum": ["fp8", "int8_sq", "int4_awq", "int8_wo", "int4_wo", None],
            "description": (
                "fp8 (FP8), int8_sq (W8A8 SmoothQuant), int4_awq (W4A16 AWQ), int8_wo / int4_wo "
                "(weight-only)."
            ),
        },
        "kv_cache_dtype": {"enum": ["auto", "fp8", "int8"]},
        "kv_cache_free_gpu_memory_fraction": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
        },
        "enable_block_reuse": {"type": "boolean"},
        "engine_cache_dir": {
            "type": "string",
            "minLength": 1,
            "description": (
                "Folder where built engines are kept and reused (keyed by model and build options)."
            ),
        },
        "runtime": {
            "enum": ["tensorrt", "pytorch"],
            "description": (
                "tensorrt: build a TensorRT engine (tensorrt_llm._tensorrt_engine.LLM); pytorch:"
                " TensorRT-LLM's PyTorch flow (tensorrt_llm.LLM). Default tensorrt."
            ),
        },
    },
}
