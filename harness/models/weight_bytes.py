"""Bytes of weights one decode step reads: what MBU divides by the device's memory bandwidth.

A decode step reads every weight the token passes through once, at its *stored* width, not the
compute precision: a Q4_K_M GGUF computes in fp16/fp32 but reads ~4.5-6.6 bits per weight.

- GGUF (llama.cpp): the file's own tensor sizes (``gguf.GGUFReader``: each tensor's ``n_bytes``
  follows its GGML type's block layout, e.g. Q4_K 144 bytes per 256 weights, Q6_K 210, F16 2 per
  weight), summed over tensors.
- Weight-only and weight+activation quantisation of Hugging Face checkpoints and engines (AWQ,
  GPTQ, FP8, INT8, bitsandbytes): the quantised linear layers at their bits per weight plus their
  per-group scales and zero points (``QUANT_FORMATS``); the input embedding and an untied LM head,
  which these methods leave unquantised, at the compute precision's width. Per-channel or
  per-tensor scales (one per output row or per tensor) are below 0.1 % and not counted.
- MoE (Mixtral, Qwen-MoE, DeepSeek, GGUF ``*_exps`` tensors): a token passes through
  ``experts per token`` of ``experts`` in each MoE layer, so expert weights count with that
  fraction (the batch-1 figure: a batch whose tokens pick different experts reads more).

Every figure carries a ``source`` sentence saying how it was obtained.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.backends.base import FlopsEstimate


@dataclass(frozen=True)
class WeightBytes:
    """Weight bytes read per decode step and how they were obtained."""

    per_step: float
    source: str


@dataclass(frozen=True)
class QuantFormat:
    """Storage of one quantisation method's quantised weights."""

    bits: float  # bits per quantised weight
    group_size: int | None  # weights sharing one scale (None: per channel/tensor, not counted)
    group_bytes: float  # bytes of scale (+ zero point) per group
    note: str


#: Quantisation method (suite option values of every backend, and HF ``quant_method``) -> format.
QUANT_FORMATS: dict[str, QuantFormat] = {
    # AutoAWQ GEMM layout: int4 weights, fp16 scale and packed int4 zero point per 128-group.
    "awq": QuantFormat(4, 128, 2.5, "AWQ int4, fp16 scale + int4 zero per 128 weights"),
    "int4_awq": QuantFormat(4, 128, 2.5, "AWQ int4, fp16 scale + int4 zero per 128 weights"),
    # GPTQ (AutoGPTQ/GPTQModel): int4 qweight, fp16 scales and packed int4 qzeros per group.
    "gptq": QuantFormat(4, 128, 2.5, "GPTQ int4, fp16 scale + int4 zero per 128 weights"),
    "fp8": QuantFormat(8, None, 0.0, "FP8 weights, per-tensor/per-channel scales"),
    "int8_sq": QuantFormat(8, None, 0.0, "INT8 SmoothQuant weights, per-channel scales"),
    "int8_wo": QuantFormat(8, None, 0.0, "INT8 weight-only, per-channel scales"),
    "int4_wo": QuantFormat(4, None, 0.0, "INT4 weight-only, per-channel scales"),
    "bnb_int8": QuantFormat(8, None, 0.0, "bitsandbytes LLM.int8, per-row scales"),
    # bitsandbytes 4-bit: one fp32 absmax per 64 weights (double quantisation: see bnb_width).
    "bnb_nf4": QuantFormat(4, 64, 4.0, "bitsandbytes NF4, fp32 absmax per 64 weights"),
    "bnb_fp4": QuantFormat(4, 64, 4.0, "bitsandbytes FP4, fp32 absmax per 64 weights"),
}
# vLLM's names for the same storage (its kernels differ, the bytes do not); vLLM's in-flight
# ``bitsandbytes`` quantisation is 4-bit NF4 by default.
QUANT_FORMATS.update(
    awq_marlin=QUANT_FORMATS["awq"],
    gptq_marlin=QUANT_FORMATS["gptq"],
    bitsandbytes=QUANT_FORMATS["bnb_nf4"],
)


def quant_width(method: str, config: dict[str, Any] | None = None) -> tuple[float, str] | None:
    """(bytes per quantised weight, note) of ``method``; None when unknown. ``config`` (an HF
    ``quantization_config``) may override ``bits`` and ``group_size``; bitsandbytes' double
    quantisation stores the absmax as int8 with one fp32 per 256 absmax values."""
    fmt = QUANT_FORMATS.get(method.lower())
    if fmt is None:
        return None
    config = config or {}
    bits = float(config.get("bits") or config.get("w_bit") or fmt.bits)
    group = config.get("group_size") or config.get("q_group_size") or fmt.group_size
    group_bytes, note = fmt.group_bytes, fmt.note
    if method.startswith("bnb_") and config.get("bnb_4bit_use_double_quant"):
        group_bytes, note = 1.0 + 4.0 / 256, note.replace("fp32 absmax", "int8 absmax (double)")
    width = bits / 8
    if group and int(group) > 0 and group_bytes:
        width += group_bytes / int(group)
    return width, note


def quantised_bytes(
    params: int,
    unquantised_params: int,
    compute_width: float,
    method: str,
    config: dict[str, Any] | None = None,
) -> WeightBytes | None:
    """Weight bytes per step of a checkpoint quantised with ``method``: ``params -
    unquantised_params`` at the method's width, the rest (embedding, untied LM head) at
    ``compute_width``. ``params`` are the parameters one token passes through (a MoE's active
    ones). None when the method is unknown."""
    q = quant_width(method, config)
    if q is None:
        return None
    width, note = q
    quantised = max(params - unquantised_params, 0)
    plain = unquantised_params
    total = quantised * width + plain * compute_width
    source = (
        f"{method}: {quantised} quantised weights x {width:.4g} B ({note}) + {plain} "
        f"unquantised (embedding, untied LM head) x {compute_width:g} B"
    )
    return WeightBytes(total, source)


def is_expert_tensor(name: str) -> bool:
    """GGUF expert tensors (``blk.N.ffn_gate_exps.weight``; shared experts ``_shexp`` are always
    read) and HF expert parameters (``...mlp.experts.3.w1.weight``, fused
    ``...experts.gate_up_proj``)."""
    return "_exps" in name or ".experts." in name


def gguf_tensor_bytes(
    tensors: Iterable[tuple[str, str, int]], experts_used: int | None, experts: int | None
) -> WeightBytes:
    """Bytes per step from GGUF tensors ``(name, GGML type name, n_bytes)``: all of them, expert
    tensors scaled by ``experts_used / experts`` when the model is a MoE."""
    by_type: dict[str, float] = {}
    fraction = experts_used / experts if experts and experts_used else 1.0
    for name, type_name, n_bytes in tensors:
        share = fraction if is_expert_tensor(name) else 1.0
        by_type[type_name] = by_type.get(type_name, 0.0) + n_bytes * share
    total = sum(by_type.values())
    parts = ", ".join(f"{t} {b:.4g} B" for t, b in sorted(by_type.items(), key=lambda x: -x[1]))
    source = f"GGUF stored tensor bytes ({parts})"
    if fraction != 1.0:
        source += f"; expert tensors x {experts_used}/{experts} (experts per token)"
    return WeightBytes(total, source)


def gguf_weight_bytes(path: Path, meta: dict[str, str]) -> WeightBytes:
    """Bytes per step of a GGUF file (``meta``: its key/value metadata, for the expert counts).
    Raises ImportError without the ``gguf`` package, ValueError for an unreadable file."""
    from gguf import GGUFReader

    arch = meta.get("general.architecture", "")
    used = meta.get(f"{arch}.expert_used_count")
    count = meta.get(f"{arch}.expert_count")
    tensors = [(t.name, t.tensor_type.name, int(t.n_bytes)) for t in GGUFReader(str(path)).tensors]
    return gguf_tensor_bytes(tensors, int(used) if used else None, int(count) if count else None)


def gguf_file_bytes(path: Path) -> WeightBytes:
    """``gguf_weight_bytes`` with the expert counts read from the file's own metadata."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch = str(field("general.architecture") or "")
    used, count = field(f"{arch}.expert_used_count"), field(f"{arch}.expert_count")
    tensors = [(t.name, t.tensor_type.name, int(t.n_bytes)) for t in reader.tensors]
    return gguf_tensor_bytes(tensors, int(used) if used else None, int(count) if count else None)


def served_gguf_bytes(model_ref: dict[str, Any]) -> dict[str, Any] | None:
    """``{"per_step", "source"}`` of the GGUF file a server is said to run (an alias or gguf model
    reference), for a backend that talks to a server and has no weights of its own; None for other
    references or an unreadable file (MBU then falls back to parameters x width)."""
    from harness.models.refs import local_file

    try:
        path = local_file(model_ref)
        if path is None or not path.is_file():
            return None
        wb = gguf_file_bytes(path)
    except Exception:  # no gguf package, a damaged file: the fallback says what it assumed
        return None
    return {"per_step": wb.per_step, "source": f"{wb.source}; assumes the server runs {path.name}"}


def stored_weight_bytes(
    model_info: dict[str, Any], config: dict[str, Any], flops: FlopsEstimate
) -> WeightBytes | None:
    """Weight bytes one decode step reads at their stored width (``harness.models.weight_bytes``),
    or None to fall back to parameters x the precision's width: the backend's own figure (GGUF
    tensor types), else the quantisation method the experiment asks for (suite option
    ``quantization`` of its backend block)."""
    from harness.contract.registry import option_block  # the registry imports the backends
    from harness.hardware.peaks import BYTES_PER_ELEMENT, DTYPES  # peaks imports this module

    own = model_info.get("weight_bytes")
    if isinstance(own, dict) and own.get("per_step"):
        return WeightBytes(float(own["per_step"]), str(own.get("source", "")))
    block = option_block(config.get("backend", ""))
    engine_args = model_info.get("engine_args") or {}
    method = (config.get(block) or {}).get("quantization") or engine_args.get("quantization")
    params = flops.active_params or flops.params
    if not method or params is None or flops.unquantised_params is None:
        return None
    width = BYTES_PER_ELEMENT.get(DTYPES.get(str(config.get("precision", "")).lower(), ""), 2)
    known = quantised_bytes(
        params, flops.unquantised_params, width, str(method), engine_args.get("quantization_config")
    )
    if known is not None:
        return known
    return WeightBytes(
        params * width,
        f"quantization {method!r} has no storage entry here: {params} parameters x {width:g} B "
        "(the compute width, an upper bound of what is read)",
    )
