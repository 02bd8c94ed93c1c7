"""Engine-independent parts of the mlx backend, importable without mlx: the suite's ``mlx:`` block
(JSON Schema, part of the backend's description) and the mapping of an experiment config onto
mlx-lm's arguments (``engine_args``), kept apart so the mapping is testable anywhere.

mlx-lm functions these arguments feed (mlx-lm 0.32, ``mlx_lm/generate.py`` and
``mlx_lm/sample_utils.py`` in github:ml-explore/mlx-lm): ``stream_generate(model, tokenizer,
prompt, max_tokens, sampler=, logits_processors=, prefill_step_size=, max_kv_size=)``,
``BatchGenerator(model, max_tokens=, stop_tokens=, sampler=, logits_processors=,
completion_batch_size=, prefill_batch_size=, prefill_step_size=)``,
``make_sampler(temp, top_p, min_p, top_k=)``, ``make_logits_processors(logit_bias=,
repetition_penalty=, repetition_context_size=)`` and ``mlx_lm.utils.quantize_model(model, config,
group_size, bits)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.backends.base import Sampling

#: The experiment's precision -> the mlx dtype floating parameters are cast to after loading.
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
#: What mlx offers for CPU threads: nothing. Its CPU back-end runs each operation on one thread
#: (github:ml-explore/mlx issues #1218 and #2185: "no out-of-the-box multi-threading support
#: currently in the CPU backend"); mlx[cpu] on Linux links the reference BLAS. Said in results.
THREADS_NOTE = (
    "mlx has no CPU thread setting (its CPU back-end runs each operation on one thread; "
    "github.com/ml-explore/mlx/issues/1218): the requested thread count is not applied"
)
DEFAULT_PREFILL_STEP = 2048  # mlx-lm's own default (generate_step, BatchGenerator)
#: mlx-lm's default repetition window (make_logits_processors): the penalty sees the last 20
#: tokens, unlike transformers and llamacpp here (the whole history). Recorded in engine args.
REPETITION_CONTEXT = 20


@dataclass(frozen=True)
class MlxArgs:
    """What one load group asks of mlx-lm (recorded in the result's provenance as it is)."""

    device: str  # "cpu" or "gpu" (Metal on Apple silicon, CUDA with mlx[cuda])
    dtype: str  # mlx dtype name of the floating parameters
    batching: str  # native (BatchGenerator) | sequential (stream_generate per prompt)
    prefill_step_size: int
    quantize_bits: int | None  # quantise the loaded weights in memory (None: as stored)
    quantize_group_size: int
    max_kv_size: int | None
    threads_requested: int | None  # the experiment's thread count, which mlx cannot apply

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict for results."""
        out = asdict(self)
        if self.threads_requested is not None:
            out["threads_note"] = THREADS_NOTE
        return out


def engine_args(config: dict[str, Any], gpu_available: bool) -> MlxArgs:
    """Map an experiment config onto mlx-lm arguments. ``gpu_available`` is
    ``mx.is_available(mx.gpu)``. Raises ValueError for a device mlx does not have here."""
    opts = dict(config.get("mlx") or {})
    wanted = str(config.get("device", "auto"))
    if wanted == "auto":
        device = "gpu" if gpu_available else "cpu"
    elif wanted == "cpu":
        device = "cpu"
    else:  # cuda / cuda:N: mlx's GPU stream (mlx[cuda]); it has one GPU device
        if not gpu_available:
            raise ValueError(
                f"device {wanted!r}: this mlx build has no GPU (install mlx[cuda] on NVIDIA, or "
                "use device auto/cpu)"
            )
        device = "gpu"
    quant = opts.get("quantize") or {}
    threads = opts.get("threads", config.get("threads"))
    return MlxArgs(
        device=device,
        dtype=DTYPES[str(config.get("precision", "fp32"))],
        batching=str(opts.get("batching", "native")),
        prefill_step_size=int(opts.get("prefill_step_size", DEFAULT_PREFILL_STEP)),
        quantize_bits=int(quant["bits"]) if quant else None,
        quantize_group_size=int(quant.get("group_size", 64)) if quant else 64,
        max_kv_size=int(opts["max_kv_size"]) if opts.get("max_kv_size") else None,
        threads_requested=int(threads) if threads else None,
    )


def sampler_args(sampling: Sampling) -> dict[str, Any]:
    """``make_sampler`` keyword arguments for ``sampling`` (greedy: temp 0, mlx-lm's argmax).
    mlx-lm's top_p 0.0 and 1.0 both mean off; top_k 0 off; min_p 0 off."""
    if not sampling.do_sample or sampling.temperature == 0:
        return {"temp": 0.0}
    return {
        "temp": float(sampling.temperature),
        "top_p": float(sampling.top_p) if sampling.top_p < 1.0 else 0.0,
        "min_p": float(sampling.min_p),
        "top_k": int(sampling.top_k),
    }


def processor_args(sampling: Sampling, eos_ids: list[int], exact: bool) -> dict[str, Any]:
    """``make_logits_processors`` keyword arguments: end-of-sequence tokens biased to -inf when the
    output length is exact (never chosen, as transformers' ``min_new_tokens``), and the
    repetition penalty when sampling asks for one."""
    out: dict[str, Any] = {}
    if exact and eos_ids:
        out["logit_bias"] = {int(t): float("-inf") for t in eos_ids}
    if sampling.do_sample and sampling.repetition_penalty != 1.0:
        out["repetition_penalty"] = float(sampling.repetition_penalty)
        out["repetition_context_size"] = REPETITION_CONTEXT
    return out


# The suite's `mlx:` block (JSON Schema), part of the backend's description.
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "Apple MLX through mlx-lm: Metal GPU on Apple silicon, CPU (mlx[cpu]) on Linux. Model: a "
        "folder in Hugging Face layout (MLX-quantised ones too), a Hub id, or a GGUF/alias "
        "(converted once into lembench's cache)."
    ),
    "properties": {
        "batching": {
            "enum": ["native", "sequential"],
            "description": (
                "native: mlx-lm's BatchGenerator decodes the batch's prompts together; "
                "sequential: stream_generate prompt after prompt (default native)."
            ),
        },
        "quantize": {
            "type": "object",
            "additionalProperties": False,
            "required": ["bits"],
            "description": (
                "Quantise the loaded weights in memory (mlx_lm.utils.quantize_model, affine): "
                "bits and group_size. Leave out for weights as stored."
            ),
            "properties": {
                "bits": {"enum": [2, 3, 4, 5, 6, 8]},
                "group_size": {"enum": [32, 64, 128]},
            },
        },
        "prefill_step_size": {
            "type": "integer",
            "minimum": 1,
            "description": "Prompt tokens processed per step (default 2048, mlx-lm's).",
        },
        "max_kv_size": {
            "type": "integer",
            "minimum": 1,
            "description": (
                "Rotating KV cache of this many tokens (sequential only; default: unbounded)."
            ),
        },
        "threads": {
            "type": "integer",
            "minimum": 1,
            "description": (
                "Accepted so suites can say the same thread count for every engine; mlx has no "
                "CPU thread setting, so it is recorded as not applied."
            ),
        },
    },
}
