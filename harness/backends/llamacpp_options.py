"""Engine-independent parts of the llamacpp backend, importable without llama_cpp or numpy.

``engine_args`` maps an experiment config's ``llamacpp:`` options onto llama.h's model/context
parameters; ``choose_token`` picks the next token from one row of logits (numpy, imported inside);
``is_ordinary`` filters the vocabulary by token attributes; ``_flops_inputs`` reads what the FLOPs
estimate needs from a GGUF file's metadata and tensor sizes (``gguf``, imported inside).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.backends.base import GREEDY, BackendUnavailable, Sampling

# The experiment's precision has no effect on GGUF weights (their quantisation is in the file);
# it selects the KV cache type, llama.cpp's only dtype choice at load time.
KV_CACHE_TYPES = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
CTX_ALIGN = 256  # per-sequence context is rounded up to this (llama.cpp pads its KV cache alike)
DEFAULT_N_BATCH = 512  # llama_cpp.Llama's defaults, so results match what its users get
DEFAULT_N_UBATCH = 512
# llama_token_attr bits (llama.h): ordinary text pieces are NORMAL or BYTE; the rest are markers.
ATTR_UNKNOWN, ATTR_UNUSED, ATTR_NORMAL, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_BYTE = (
    1,
    2,
    4,
    8,
    16,
    32,
)
_NOT_ORDINARY = ATTR_UNKNOWN | ATTR_UNUSED | ATTR_CONTROL | ATTR_USER_DEFINED


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def is_ordinary(attr: int) -> bool:
    """Whether a token with ``llama_vocab_get_attr`` bits ``attr`` is ordinary text (not a
    control, user-defined/added, unknown or unused token)."""
    return bool(attr & (ATTR_NORMAL | ATTR_BYTE)) and not attr & _NOT_ORDINARY


def sequence_tokens(workload: dict[str, Any]) -> int | None:
    """Tokens one request needs in the KV cache (prompt + output), when the workload fixes it
    (synthetic); None when prompts are only known at generate time."""
    if workload.get("kind") == "synthetic":
        return int(workload.get("input_tokens", 32)) + int(workload.get("output_tokens", 32))
    return None


def engine_args(config: dict[str, Any], *, gpu_offload: bool, cpu_count: int) -> dict[str, Any]:
    """The engine settings for an experiment config: every ``llamacpp:`` option mapped to the
    ``llama_model_params`` / ``llama_context_params`` field of llama.h it sets (JSON-safe).

    Absent options get llama-cpp-python ``Llama``'s defaults (n_batch 512, n_ubatch 512), except
    ``n_threads``, which is the experiment's thread count (``threads``, else ``cpu_count``, the CPUs
    this process may use: harness.hardware.threads; ``Llama`` would take half of them), and
    ``n_threads_batch`` which defaults to ``n_threads``: llama.cpp runs every
    multi-token decode (a native batch's step too) on ``n_threads_batch``, so a different count
    would change the thread count between batch sizes. ``n_ctx`` defaults to ``n_seq_max`` x
    (input + output tokens) rounded up to 256 per sequence; None when the workload's prompt lengths
    are unknown before generation (then the first batch sizes it). ``gpu_offload`` is
    ``llama_supports_gpu_offload()``; raises BackendUnavailable / ValueError for impossible setups.
    """
    opts = dict(config.get("llamacpp") or {})
    wanted = str(config.get("device", "auto"))
    device = ("cuda" if gpu_offload else "cpu") if wanted == "auto" else wanted
    model: dict[str, Any] = {}
    if device.startswith("cuda"):
        if not gpu_offload:
            raise BackendUnavailable(
                f"device {wanted!r}: this llama-cpp-python build has no GPU offload "
                "(rebuild it with CMAKE_ARGS=-DGGML_CUDA=on)"
            )
        # All layers on the GPU unless told otherwise: "cuda" with 0 layers would run on the CPU.
        ngl = opts.get("n_gpu_layers", -1)
        model["n_gpu_layers"] = 0x7FFFFFFF if ngl == -1 else ngl  # as Llama(): -1 means all
        if ":" in device:  # one named GPU: no split across the others
            model.update(split_mode="none", main_gpu=int(device.split(":", 1)[1]))
    else:
        if opts.get("n_gpu_layers", 0) != 0:
            raise ValueError(f"n_gpu_layers={opts['n_gpu_layers']} needs device cuda, not cpu")
        model["n_gpu_layers"] = 0
    batching = opts.get("batching", "native")
    n_seq_max = int(config.get("batch_size", 1)) if batching == "native" else 1
    if "n_ctx" in opts:
        n_ctx = int(opts["n_ctx"])  # 0: the model's training context (llama.cpp's meaning)
    else:
        per_seq = sequence_tokens(config.get("workload") or {})
        n_ctx = None if per_seq is None else n_seq_max * _round_up(per_seq, CTX_ALIGN)
    n_threads = int(opts.get("n_threads") or config.get("threads") or max(cpu_count, 1))
    n_batch = int(opts.get("n_batch", DEFAULT_N_BATCH))
    kv = KV_CACHE_TYPES[config.get("precision", "fp32")]
    context = {
        "n_ctx": n_ctx,
        "n_seq_max": n_seq_max,
        "n_batch": n_batch,
        "n_ubatch": min(int(opts.get("n_ubatch", DEFAULT_N_UBATCH)), n_batch),
        "n_threads": n_threads,
        "n_threads_batch": int(opts.get("n_threads_batch") or n_threads),
        "flash_attn": bool(opts.get("flash_attn", False)),
        "offload_kqv": bool(opts.get("offload_kqv", True)),
        "type_k": kv,
        "type_v": kv,
        "no_perf": True,  # llama.cpp's own perf counters are not used
    }
    return {"device": device, "batching": batching, "model": model, "context": context}


def choose_token(
    logits: Any,
    sampling: Sampling = GREEDY,
    rng: Any = None,
    history: Any = None,
    banned: Any = None,
) -> int:
    """The next token from one row of logits (numpy float array of the vocabulary size).

    ``banned`` ids are never chosen (end-of-generation tokens when output length is exact, as
    transformers' ``min_new_tokens`` does). Greedy (``not sampling.do_sample``): argmax. Sampling,
    in transformers' order: repetition penalty over ``history`` (prompt + generated ids; positive
    logits divided, negative multiplied), temperature, top-k, top-p, min-p, then one draw from
    ``rng`` (a ``numpy.random.Generator``).
    """
    import numpy as np

    x = logits
    if banned is not None and len(banned):
        x = np.array(logits, dtype=np.float32)
        x[banned] = -np.inf
    if not sampling.do_sample or sampling.temperature == 0:
        return int(np.argmax(x))
    if rng is None:
        raise ValueError("sampling needs a numpy Generator")
    x = np.array(x, dtype=np.float64)
    if sampling.repetition_penalty != 1.0 and history is not None and len(history):
        ids = np.unique(np.asarray(history, dtype=np.int64))
        seen = x[ids]
        x[ids] = np.where(
            seen > 0, seen / sampling.repetition_penalty, seen * sampling.repetition_penalty
        )
    x /= sampling.temperature
    if 0 < sampling.top_k < x.size:
        kth = np.partition(x, -sampling.top_k)[-sampling.top_k]
        x[x < kth] = -np.inf
    p = np.exp(x - np.max(x))
    p /= p.sum()
    if sampling.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]  # mass of the more likely tokens
        p[order[before >= sampling.top_p]] = 0.0  # keep the smallest set reaching top_p
    if sampling.min_p > 0.0:
        p[p < sampling.min_p * p.max()] = 0.0
    p /= p.sum()
    return int(rng.choice(p.size, p=p))


def _flops_inputs(path: Path, meta: dict[str, str], n_params: int) -> dict[str, Any]:
    """What :meth:`LlamaCppBackend.flops_per_token` and MBU need, read once at load: the
    architecture shape from the GGUF metadata, matrix-multiply parameters from its tensor sizes
    and the stored weight bytes per decode step from its tensor types (``gguf``). A MoE's expert
    tensors (``*_exps``) count with experts-per-token / experts."""
    info: dict[str, Any] = {"params": n_params or None}
    arch = meta.get("general.architecture", "")
    try:
        layers = int(meta[f"{arch}.block_count"])
        hidden = int(meta[f"{arch}.embedding_length"])
        heads = int(meta[f"{arch}.attention.head_count"])
        head_dim = int(meta.get(f"{arch}.attention.key_length") or hidden // heads)
        from gguf import GGUFReader

        tensors = GGUFReader(str(path)).tensors
    except (KeyError, ValueError, ImportError) as exc:
        info["why"] = f"analytical: {type(exc).__name__}: {exc}"
        return info
    from harness.models.weight_bytes import gguf_tensor_bytes, is_expert_tensor

    used = int(meta.get(f"{arch}.expert_used_count") or 0)
    count = int(meta.get(f"{arch}.expert_count") or 0)
    fraction = used / count if used and count else 1.0
    sizes = {t.name: int(t.n_elements) for t in tensors}
    active = {n: v * fraction if is_expert_tensor(n) else v for n, v in sizes.items()}
    embed = sizes.get("token_embd.weight", 0)
    tied = "output.weight" not in sizes
    stored = gguf_tensor_bytes(
        ((t.name, t.tensor_type.name, int(t.n_bytes)) for t in tensors), used, count
    )
    info.update(
        matmul_params=round(sum(active.values())) - embed + (embed if tied else 0),
        active_params=round(sum(active.values())) if fraction != 1.0 else None,
        tied=tied,
        weight_bytes={"per_step": stored.per_step, "source": stored.source},
        shape={
            "num_hidden_layers": layers,
            "hidden_size": hidden,
            "num_attention_heads": heads,
            "head_dim": head_dim,
        },
    )
    return info


# The suite's `llamacpp:` block (JSON Schema), part of the backend's description.
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "llama.cpp (llama-cpp-python) engine options; model must be a GGUF file or alias."
    ),
    "properties": {
        "n_gpu_layers": {
            "type": "integer",
            "minimum": -1,
            "description": (
                "Layers offloaded to the GPU (-1: all; default: 0 on device cpu, all on cuda)."
            ),
        },
        "n_ctx": {
            "type": "integer",
            "minimum": 0,
            "description": (
                "Context size in tokens shared by all sequences of a batch (default: batch_size "
                "x (input + output tokens), rounded up)."
            ),
        },
        "n_batch": {
            "type": "integer",
            "minimum": 1,
            "description": (
                "Logical batch: most tokens submitted to llama_decode at once (default 512)."
            ),
        },
        "n_ubatch": {
            "type": "integer",
            "minimum": 1,
            "description": "Physical batch (default 512).",
        },
        "n_threads": {
            "type": "integer",
            "minimum": 1,
            "description": (
                "Threads for single-token decodes (default: the experiment's threads, else every "
                "CPU this process may use; llama-cpp-python's Llama would take half)."
            ),
        },
        "n_threads_batch": {
            "type": "integer",
            "minimum": 1,
            "description": "Threads for prompt processing (default: n_threads).",
        },
        "flash_attn": {"type": "boolean", "description": "Flash attention (default false)."},
        "offload_kqv": {
            "type": "boolean",
            "description": "Keep the KV cache on the GPU (default true).",
        },
        "batching": {
            "enum": ["native", "sequential"],
            "description": (
                "native: one llama_decode over all sequences of a batch (unified KV cache, one "
                "seq_id each); sequential: the batch's prompts one after another (default "
                "native)."
            ),
        },
    },
}
