"""Forward FLOPs per token of a transformers causal LM, with a fallback chain.

Definition (what ``flops_per_output_token`` in results means): the forward-pass FLOPs of one token,
averaged over a sequence of ``sequence_length`` tokens; the harness calls it with
``sequence_length = input_tokens + output_tokens``. It is the architecture's cost, independent of
the attention kernel. It counts the LM head for every position, which makes it a slight upper bound
for prompt tokens (``generate`` computes logits for the last prompt position only).

Methods, tried in order and recorded in ``FlopsEstimate.method``:

1. ``calflops``: calflops counts one forward pass of a probe sequence (at most
   ``CALFLOPS_PROBE_TOKENS`` tokens) with SDPA attention. calflops cannot see inside fused SDPA
   kernels, so what it counts (linear layers, LM head, norms, activations, rotary) is exactly linear
   in the tokens; the causal attention term below is added analytically for the real length. The
   probe stays short so the estimate costs well under a second and cannot run out of memory at
   long contexts.
2. ``analytical``: ``2 * N_matmul + 2 * n_layers * sequence_length * d_attn`` where ``N_matmul`` is
   every parameter used in a matrix multiply once per token: all parameters, minus the input
   embedding (a lookup, not a multiply), plus the LM head when it is tied to that embedding (the
   textbook "non-embedding" count would drop the LM head, 21 % of SmolLM2-135M's FLOPs).
   ``d_attn = num_attention_heads * head_dim``. The attention term is Q.K^T and A.V (2 FLOPs per
   multiply-add, 2 * s * d_attn each) averaged over causal positions (mean context s/2).
3. ``params_x2``: ``2 * N`` over all parameters (ignores attention and the embedding lookup).

Mixture of experts: a token passes through ``num_experts_per_tok`` of the routed experts of each
MoE layer, so expert parameters (``...experts...`` tensors; shared experts are always used) count
in ``N_matmul`` with the fraction ``experts per token / experts`` (analytical; calflops runs the
real router and counts what it routes). ``FlopsEstimate.active_params`` holds the same count for
MBU's weight bytes.

Never raises: if nothing works, ``method="unavailable"`` and ``per_token=None``, with the reasons
in ``note``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

from harness.backends.base import FlopsEstimate

log = logging.getLogger(__name__)

CALFLOPS_PROBE_TOKENS = 128


def _cfg(config: Any, *names: str) -> int:
    """First integer attribute of ``config`` among ``names`` (configs name them differently)."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"config has none of {', '.join(names)}")


def attention_flops_per_token(config: Any, sequence_length: int) -> float:
    """Causal Q.K^T + A.V FLOPs per token, averaged over ``sequence_length`` positions."""
    n_layers = _cfg(config, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _cfg(config, "hidden_size", "n_embd", "d_model")
    heads = _cfg(config, "num_attention_heads", "n_head")
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return 2.0 * n_layers * sequence_length * heads * head_dim


def _numel(p: Any) -> int:
    """Elements of a parameter as the model uses it. bitsandbytes' 4-bit ``Params4bit`` holds two
    weights per uint8 element, so its ``numel()`` is half the layer's weights; its
    ``quant_state.shape`` is the original shape (what bitsandbytes and PEFT count by)."""
    shape = getattr(getattr(p, "quant_state", None), "shape", None)
    if shape is not None:
        n = 1
        for d in shape:
            n *= int(d)
        return n
    return int(p.numel())


def count_params(model: Any) -> int:
    """Number of parameters (shared tensors counted once; 4-bit packed weights unpacked)."""
    return int(sum(_numel(p) for p in model.parameters()))


def matmul_params(model: Any) -> int:
    """Parameters used in a matrix multiply once per token (see module docstring)."""
    total = count_params(model)
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    n = total - int(embed.weight.numel())
    if head is not None:
        # Meta tensors (weightless models built from a config) all have data_ptr() 0: only
        # identity tells tied from untied there.
        same_storage = (
            not embed.weight.is_meta and head.weight.data_ptr() == embed.weight.data_ptr()
        )
        tied = head.weight is embed.weight or same_storage
        if tied:
            n += int(head.weight.numel())
    return n


def experts_per_token(config: Any) -> tuple[int, int] | None:
    """(experts per token, routed experts) of a MoE config; None for a dense model."""
    k = getattr(config, "num_experts_per_tok", None) or getattr(config, "moe_topk", None)
    n = None
    for name in ("num_local_experts", "num_experts", "n_routed_experts"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            n = value
            break
    if not isinstance(k, int) or not n or k <= 0 or k >= n:
        return None
    return k, n


def inactive_expert_params(model: Any, config: Any) -> int:
    """Routed-expert parameters a token does not pass through: expert tensors x (1 - k/n)."""
    moe = experts_per_token(config)
    if moe is None:
        return 0
    from harness.models.weight_bytes import is_expert_tensor

    experts = sum(int(p.numel()) for name, p in model.named_parameters() if is_expert_tensor(name))
    k, n = moe
    return round(experts * (n - k) / n)


def unquantised_params(model: Any) -> int:
    """Input embedding plus an untied LM head (what weight quantisation leaves at full width)."""
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    n = int(embed.weight.numel())
    if head is not None and head.weight is not embed.weight:
        same = not embed.weight.is_meta and head.weight.data_ptr() == embed.weight.data_ptr()
        if not same:
            n += int(head.weight.numel())
    return n


def _calflops(model: Any, config: Any, sequence_length: int) -> tuple[float, str]:
    import torch
    from calflops import calculate_flops

    probe = min(sequence_length, CALFLOPS_PROBE_TOKENS)
    device = next(model.parameters()).device
    vocab = _cfg(config, "vocab_size")
    ids = torch.arange(probe, device=device).remainder(vocab).unsqueeze(0)
    mask = torch.ones_like(ids)
    previous = getattr(model.config, "_attn_implementation", None)
    switched = False
    try:
        if previous not in (None, "sdpa") and hasattr(model, "set_attn_implementation"):
            # Count every model the same way, whichever kernel it generates with.
            model.set_attn_implementation("sdpa")
            switched = True
        # calflops prints on its own in some paths; results go to the harness's log, not stdout.
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            flops, _macs, _params = calculate_flops(
                model=model,
                kwargs={"input_ids": ids, "attention_mask": mask},
                print_results=False,
                print_detailed=False,
                output_as_string=False,
            )
    finally:
        if switched:
            model.set_attn_implementation(previous)
    if not flops or flops <= 0:
        raise ValueError(f"calflops returned {flops!r}")
    linear = float(flops) / probe
    attention = attention_flops_per_token(config, sequence_length)
    note = (
        f"calflops over a {probe}-token forward pass (SDPA, attention kernel not visible to it): "
        f"{linear:.4g}/token; plus causal attention 2*n_layers*s*d_attn = {attention:.4g}/token "
        f"at s={sequence_length}"
    )
    return linear + attention, note


def _analytical(model: Any, config: Any, sequence_length: int) -> tuple[float, str]:
    inactive = inactive_expert_params(model, config)
    n = matmul_params(model) - inactive
    attention = attention_flops_per_token(config, sequence_length)
    note = (
        f"analytical 2*N_matmul + 2*n_layers*s*d_attn: N_matmul={n} (all params minus input "
        f"embedding, plus tied LM head), attention {attention:.4g}/token at s={sequence_length}"
    )
    if inactive:
        k, e = experts_per_token(config) or (0, 0)
        note += f"; MoE: {k} of {e} experts per token ({inactive} expert params not used)"
    return 2.0 * n + attention, note


def _param_counts(model: Any, config: Any) -> dict[str, int | None]:
    """``active_params`` and ``unquantised_params`` of a FlopsEstimate (None where unknown)."""
    out: dict[str, int | None] = {"active_params": None, "unquantised_params": None}
    try:
        inactive = inactive_expert_params(model, config)
        if inactive:
            out["active_params"] = count_params(model) - inactive
        out["unquantised_params"] = unquantised_params(model)
    except Exception:  # an odd model without embeddings: MBU then counts all params plainly
        log.debug("parameter breakdown failed", exc_info=True)
    return out


def estimate_flops_per_token(model: Any, config: Any, sequence_length: int) -> FlopsEstimate:
    """Forward FLOPs per token at ``sequence_length`` tokens; never raises (see module docstring).

    ``model`` is a loaded ``transformers`` model (or None), ``config`` its config
    (``model.config`` when None is given).
    """
    if config is None and model is not None:
        config = getattr(model, "config", None)
    reasons: list[str] = []
    params: int | None = None
    if model is not None:
        try:
            params = count_params(model)
        except Exception as exc:  # a model without parameters() cannot be counted at all
            reasons.append(f"params: {type(exc).__name__}: {exc}")
    if sequence_length < 1:
        return FlopsEstimate(None, "unavailable", params, sequence_length, "sequence_length < 1")

    for method, fn in (("calflops", _calflops), ("analytical", _analytical)):
        if model is None or config is None:
            reasons.append(f"{method}: no model/config")
            continue
        try:
            value, note = fn(model, config, sequence_length)
        except Exception as exc:  # any failure falls through to the next method, with its reason
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reasons.append(f"{method}: {type(exc).__name__}: {first}"[:300])
            log.debug("FLOPs method %s failed", method, exc_info=True)
            continue
        if reasons:
            note += "; earlier methods failed: " + " | ".join(reasons)
        counts = _param_counts(model, config)
        return FlopsEstimate(value, method, params, sequence_length, note, **counts)

    if params:
        note = "2 x parameters (no attention term); " + " | ".join(reasons)
        return FlopsEstimate(2.0 * params, "params_x2", params, sequence_length, note)
    return FlopsEstimate(None, "unavailable", params, sequence_length, " | ".join(reasons))


def estimate_from_config(config: Any, sequence_length: int) -> FlopsEstimate:
    """Forward FLOPs per token from a Hugging Face config alone (a ``PretrainedConfig`` or its
    config.json as a dict), for engines whose weights are not torch modules (vLLM, TensorRT-LLM).

    The architecture is built on torch's meta device (no memory, no weights) to count its
    parameters exactly; calflops needs real tensors, so the method is ``analytical``. Never raises:
    an unknown architecture gives ``unavailable`` with the reason."""
    try:
        import torch
        import transformers

        if isinstance(config, dict):
            fields = dict(config)
            config = transformers.AutoConfig.for_model(fields.pop("model_type"), **fields)
        with torch.device("meta"):
            skeleton = transformers.AutoModelForCausalLM.from_config(config)
        params = count_params(skeleton)
        value, note = _analytical(skeleton, config, sequence_length)
        counts = _param_counts(skeleton, config)
    except Exception as exc:  # unknown architecture, missing config fields: say why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {first}"[:300]
        return FlopsEstimate(None, "unavailable", None, sequence_length, reason)
    note += " (architecture from the config on the meta device)"
    return FlopsEstimate(value, "analytical", params, sequence_length, note, **counts)
