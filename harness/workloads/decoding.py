"""Decoding presets: a suite's ``decoding:`` block resolved into one ``Sampling``.

The presets are lembench's own named points of the sampling space, so that "standard" means the same
thing on every backend; explicit fields override the preset's. Every backend maps the resolved
``Sampling`` onto its engine's parameters, and the result records it (``result.decoding``).
"""

from __future__ import annotations

from typing import Any

from harness.backends.base import GREEDY, Sampling

PRESETS: dict[str, dict[str, Any]] = {
    # Greedy: the reference for cost measurements (no sampler work, reproducible lengths).
    "deterministic": {"do_sample": False},
    # Typical chat-serving defaults.
    "standard": {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 50},
    # Flatter distribution, nucleus only.
    "creative": {"do_sample": True, "temperature": 1.2, "top_p": 0.95, "top_k": 0},
    # Sharp distribution, few candidates.
    "factual": {"do_sample": True, "temperature": 0.3, "top_p": 0.9, "top_k": 10},
}

_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def resolve(decoding: dict[str, Any] | None) -> Sampling:
    """The ``Sampling`` of a suite's ``decoding:`` block (schema-validated); greedy when None.

    ``temperature: 0`` means greedy whatever the preset says (as every engine treats it), so the
    recorded ``do_sample`` is always what really ran."""
    if not decoding:
        return GREEDY
    preset = decoding.get("preset", "deterministic")
    values: dict[str, Any] = {**PRESETS[preset]}
    for name in _FIELDS:
        if decoding.get(name) is not None:
            values[name] = decoding[name]
    if values.get("temperature") == 0:
        values["do_sample"] = False
    elif preset == "deterministic" and any(decoding.get(n) is not None for n in _FIELDS):
        # Explicit sampling fields on the greedy preset ask for sampling with them.
        values["do_sample"] = True
    return Sampling(preset=preset, seed=int(decoding.get("seed", 0)), **values)
