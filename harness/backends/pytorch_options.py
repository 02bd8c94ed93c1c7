"""Engine options of the pytorch backend mapped to transformers' API, as pure functions.

:func:`engine_kwargs` turns an experiment's ``precision`` and ``pytorch:`` block into
``from_pretrained`` keyword arguments, ``GenerationConfig`` fields and a JSON-safe record;
:func:`generation_kwargs` gives the ``GenerationConfig`` fields of one batch for a
:class:`~harness.backends.base.Sampling`. torch and transformers are imported inside functions
only, so importing this module is cheap and works without them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import BackendUnavailable, ModelLoadError, Sampling

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_BNB = {"bnb_int8": None, "bnb_nf4": "nf4", "bnb_fp4": "fp4"}  # option -> bnb_4bit_quant_type
_CUDA_ONLY_ATTN = {"flash_attention_2"}  # flash-attn kernels exist for CUDA only


@dataclass
class EngineArgs:
    """What :func:`engine_kwargs` derived from an experiment config.

    ``load``: keyword arguments of ``from_pretrained`` (torch / transformers objects);
    ``generation``: extra ``GenerationConfig`` fields; ``compile_mode``: the ``torch.compile`` mode
    of the forward pass (None: eager); ``record``: the same,
    JSON-safe, for ``LoadInfo.model["engine_args"]``.
    """

    load: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    compile_mode: str | None = None
    record: dict[str, Any] = field(default_factory=dict)


def _quantization_config(opts: dict[str, Any], precision: str) -> Any:
    """The ``BitsAndBytesConfig`` transformers gets for ``opts["quantization"]`` (None: none).

    Building it imports transformers only: bitsandbytes itself is imported by transformers' bnb
    quantizer at load time, so the mapping is testable where bitsandbytes is not installed.
    """
    import torch
    from transformers import BitsAndBytesConfig

    method = opts.get("quantization")
    four_bit_only = [k for k in ("double_quant", "compute_dtype") if k in opts]
    if method != "bnb_int8" and "llm_int8_threshold" in opts:
        raise ModelLoadError("pytorch.llm_int8_threshold applies to quantization: bnb_int8 only")
    if method not in ("bnb_nf4", "bnb_fp4") and four_bit_only:
        raise ModelLoadError(
            f"pytorch.{four_bit_only[0]} applies to quantization: bnb_nf4 or bnb_fp4 only"
        )
    if method is None:
        return None
    if method == "bnb_int8":
        kwargs: dict[str, Any] = {"load_in_8bit": True}
        if "llm_int8_threshold" in opts:  # BitsAndBytesConfig type-checks a float
            kwargs["llm_int8_threshold"] = float(opts["llm_int8_threshold"])
        return BitsAndBytesConfig(**kwargs)
    kwargs = {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": _BNB[method],
        # transformers' default compute dtype is float32; lembench computes in the precision
        "bnb_4bit_compute_dtype": getattr(torch, DTYPES[opts.get("compute_dtype", precision)]),
    }
    if "double_quant" in opts:
        kwargs["bnb_4bit_use_double_quant"] = bool(opts["double_quant"])
    return BitsAndBytesConfig(**kwargs)


def engine_kwargs(config: dict[str, Any], device_type: str, model_kind: str = "hf") -> EngineArgs:
    """Map an experiment's ``precision`` and ``pytorch:`` block to transformers' API.

    Pure apart from importing torch/transformers. ``device_type`` is ``"cpu"`` or ``"cuda"``;
    ``model_kind`` the resolved model kind (hf, path, gguf, alias). Options absent from the block
    keep transformers' defaults. Raises BackendUnavailable for what this machine cannot do
    (CUDA-only options on CPU) and ModelLoadError for combinations that cannot work anywhere.
    """
    import torch

    opts = dict(config.get("pytorch") or {})
    precision = config.get("precision", "fp32")
    args = EngineArgs()
    args.load["dtype"] = getattr(torch, DTYPES[precision])
    record: dict[str, Any] = {"dtype": DTYPES[precision]}
    if opts.get("threads"):
        record["threads"] = int(opts["threads"])

    attn = opts.get("attn_implementation")
    if attn:
        if attn in _CUDA_ONLY_ATTN and device_type != "cuda":
            raise BackendUnavailable(f"attn_implementation {attn} needs a CUDA GPU")
        args.load["attn_implementation"] = record["attn_implementation"] = attn

    method = opts.get("quantization")
    quant = _quantization_config(opts, precision)
    if quant is not None:
        if device_type != "cuda":
            raise BackendUnavailable(
                f"{method} needs CUDA and bitsandbytes: pip install bitsandbytes"
            )
        if model_kind in ("gguf", "alias"):
            raise ModelLoadError(
                f"{method} on a GGUF model is not supported: transformers dequantises GGUF "
                "weights, and re-quantising them with bitsandbytes measures neither format; use "
                "the llamacpp backend for GGUF quantisations"
            )
        args.load["quantization_config"] = quant
        record["quantization"] = method
        # Bytes of one weight as stored (MBU counts weight bytes read per decode step).
        record["weight_bytes_per_param"] = 1.0 if method == "bnb_int8" else 0.5
        record["quantization_config"] = json.loads(quant.to_json_string(use_diff=False))

    device_map = opts.get("device_map")
    if device_map:
        if device_type != "cuda":
            raise BackendUnavailable(
                f"device_map {device_map} shards the model over CUDA GPUs with accelerate; "
                "this run's device is the CPU"
            )
        args.load["device_map"] = record["device_map"] = device_map

    if opts.get("compile_mode") and not opts.get("compile"):
        raise ModelLoadError("pytorch.compile_mode needs pytorch.compile: true")
    if opts.get("compile"):
        args.compile_mode = opts.get("compile_mode") or "default"
        record["compile"] = {"mode": args.compile_mode, "target": "model.forward"}

    if opts.get("cache_implementation"):
        args.generation["cache_implementation"] = opts["cache_implementation"]
    # generate() compiles the forward by itself when the cache is static on CUDA; lembench compiles
    # only when asked (pytorch.compile), so a static cache alone measures eager static decoding.
    args.generation["disable_compile"] = True
    record["generation"] = dict(args.generation)
    args.record = record
    return args


def generation_kwargs(
    sampling: Sampling,
    max_new_tokens: int,
    exact: bool,
    eos_ids: list[int] | None,
    pad_id: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``GenerationConfig`` fields of one batch: greedy, or the sampler of ``sampling``.

    Filters that are off (``top_k`` 0, ``top_p`` 1.0, ``min_p`` 0.0) are passed so transformers
    adds no warper for them (it skips top_k 0, top_p 1.0 and min_p None)."""
    kwargs: dict[str, Any] = {
        "num_beams": 1,
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": max_new_tokens if exact else 0,
        "eos_token_id": eos_ids or None,
        "pad_token_id": pad_id,
        "do_sample": bool(sampling.do_sample),
        **(extra or {}),
    }
    if sampling.do_sample:
        kwargs.update(
            temperature=float(sampling.temperature),
            top_p=float(sampling.top_p),
            top_k=int(sampling.top_k),
            min_p=float(sampling.min_p) if sampling.min_p > 0 else None,
            repetition_penalty=float(sampling.repetition_penalty),
        )
    return kwargs


# The suite's `pytorch:` block (JSON Schema), part of the backend's description.
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "properties": {
        "threads": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "description": (
                "torch intra-op threads (CPU); null: the experiment's threads, else every CPU "
                "this process may use (always set and recorded)."
            ),
        },
        "attn_implementation": {
            "enum": ["eager", "sdpa", "flash_attention_2", "flex_attention", None],
            "default": None,
        },
        "quantization": {
            "enum": ["bnb_int8", "bnb_nf4", "bnb_fp4", None],
            "description": (
                "bitsandbytes quantisation at load time (CUDA only): bnb_int8 (LLM.int8()), "
                "bnb_nf4 / bnb_fp4 (4-bit). null: none."
            ),
        },
        "llm_int8_threshold": {
            "type": "number",
            "minimum": 0,
            "description": (
                "bnb_int8 outlier threshold (bitsandbytes default 6.0; 0.0 = pure INT8, no fp16 "
                "outlier path)."
            ),
        },
        "double_quant": {
            "type": "boolean",
            "description": (
                "bnb_nf4/bnb_fp4: quantise the quantisation constants too "
                "(bnb_4bit_use_double_quant; default false)."
            ),
        },
        "compute_dtype": {
            "enum": ["fp32", "fp16", "bf16"],
            "description": "bnb_nf4/bnb_fp4 compute dtype (default: the experiment's precision).",
        },
        "compile": {
            "type": "boolean",
            "description": "torch.compile the model's forward (default false).",
        },
        "compile_mode": {
            "enum": ["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
            "description": "torch.compile mode (default: default).",
        },
        "cache_implementation": {
            "enum": ["dynamic", "static"],
            "description": (
                "KV cache: dynamic (transformers default) or static (preallocated; needed for "
                "compiled decoding to avoid recompiles)."
            ),
        },
        "device_map": {
            "enum": ["auto", "balanced", "balanced_low_0", "sequential"],
            "description": (
                "Shard the layers over all visible GPUs with accelerate (pipeline style, one GPU"
                " busy at a time)."
            ),
        },
    },
}
