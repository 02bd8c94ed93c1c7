"""How many parameters a model has, without loading it: from a bundled architecture
(``harness/models/configs``), a local ``config.json``, or a size written in its name (``135M``,
``0.5B``). Unknown stays unknown (None): the advice never guesses a size.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: Below this many parameters a model counts as small for the 4-bit pitfall.
SMALL_MODEL_PARAMS = 3_000_000_000

# A size in a model name: 135M, 0.5B, 1.5b, 7B. Not preceded by a letter or digit (so "A3B", the
# active parameters of an MoE, and the "7B" of "8x7B" do not count) and not followed by one.
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([MmBb])(?![A-Za-z0-9])")
_SCALE = {"m": 1e6, "b": 1e9}


def params_from_name(name: str) -> int | None:
    """Parameters from a size in the last path component of a model id or file name (the largest
    one, so a suffix never makes a big model look small); None when the name states none."""
    last = re.split(r"[/\\]", name.strip())[-1]
    sizes = [float(v) * _SCALE[u.lower()] for v, u in _SIZE.findall(last)]
    return int(max(sizes)) if sizes else None


def params_from_config(config: dict[str, Any]) -> int | None:
    """Parameters of a dense decoder-only transformer from its Hugging Face ``config.json``:
    embedding, attention (grouped-query aware), gated MLP, norms and an untied LM head. Exact for
    the Llama, Mistral and Qwen families bundled here (Qwen2's attention biases included); None for
    mixtures of experts and configs missing a field (no guess)."""
    if any(k in config for k in ("num_local_experts", "num_experts", "n_routed_experts")):
        return None
    try:
        vocab = int(config["vocab_size"])
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        inter = int(config["intermediate_size"])
        heads = int(config["num_attention_heads"])
    except (KeyError, TypeError, ValueError):
        return None
    kv = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv * head_dim
    if config.get("attention_bias") or config.get("model_type") == "qwen2":
        attention += heads * head_dim + 2 * kv * head_dim
    mlp = 3 * hidden * inter  # gate, up and down projections
    per_layer = attention + mlp + 2 * hidden  # two RMSNorm weights
    embedding = vocab * hidden
    head = 0 if config.get("tie_word_embeddings", False) else vocab * hidden
    return layers * per_layer + embedding + head + hidden  # final norm


def params_from_bundled(model_id: str) -> int | None:
    """Parameters of a model whose architecture lembench bundles (``harness/models/configs``)."""
    from harness.contract import bundled_config

    try:
        return params_from_config(bundled_config(model_id))
    except KeyError:
        return None


def params_from_folder(path: Path) -> int | None:
    """Parameters from a local model folder's ``config.json`` (None when absent or unreadable)."""
    try:
        config = json.loads((path / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return params_from_config(config) if isinstance(config, dict) else None


def model_params(model: str, base: Path | None = None) -> tuple[int | None, str]:
    """(parameters, how they were found) for a model id, alias, folder or file name; (None,
    "unknown") when nothing says. Order: bundled architecture, local config.json, name."""
    count = params_from_bundled(model)
    if count is not None:
        return count, "bundled architecture config"
    folder = Path(model).expanduser()
    if base is not None and not folder.is_absolute():
        folder = base / folder
    if folder.is_dir():
        count = params_from_folder(folder)
        if count is not None:
            return count, f"{folder / 'config.json'}"
    count = params_from_name(model)
    if count is not None:
        return count, "size in the model name"
    return None, "unknown"


def human(params: int | float) -> str:
    """``135M``, ``1.24B``."""
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    return f"{params / 1e6:.3g}M"
