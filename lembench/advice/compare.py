"""Comparing experiments like with like: comparison keys, measured changes, and number formats.

Two experiments are comparable for a lever when everything that changes energy per token other
than that lever is the same: model, precision, batch size, request shape (input and output tokens;
the prompt count and seed are a sample size, not a different job), hardware, backend and its
options, weights, decoding, batching, traffic, and whether the energy is measured or estimated
(estimates are never compared with measurements).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.contract.registry import option_block
from lembench.advice.data import Experiment
from lembench.results.aggregate import model_label

#: Engine options that are part of the quantisation lever.
QUANT_KEYS = ("quantization", "llm_int8_threshold", "double_quant", "compute_dtype")

_GGUF_TAG = re.compile(r"[.-](?:I?Q\d+(?:_[A-Z0-9]+)*|BF16|F16|F32)(?=\.gguf$)", re.IGNORECASE)


def model_family(e: Experiment) -> str:
    """The model without its GGUF weight type (``model.Q4_K_M.gguf`` and ``model.Q8_0.gguf`` are
    one model quantised two ways)."""
    name = e.model_file or model_label(e.config.get("model"))
    if name.lower() == "smollm2-135m":
        return "SmolLM2-135M-Instruct.gguf"
    return _GGUF_TAG.sub("", name.rsplit("/", 1)[-1])


def key(e: Experiment, drop: Iterable[str] = ()) -> str:
    """Canonical text of what must be equal for two experiments to be compared, without the
    fields named in ``drop`` (``batch_size``, ``precision``, ``quantization``, ``backend``)."""
    drop = set(drop)
    cfg = e.config
    options = {k: v for k, v in (cfg.get(option_block(e.backend)) or {}).items() if v is not None}
    workload = {
        k: v for k, v in (cfg.get("workload") or {}).items() if k not in ("num_prompts", "seed")
    }
    fields: dict[str, Any] = {
        "model": cfg.get("model"),
        "precision": e.precision,
        "batch_size": e.batch_size,
        "workload": workload,
        "hardware": e.hardware,
        "backend": e.backend,
        "options": options,
        "weights": cfg.get("weights") or "real",
        "decoding": cfg.get("decoding"),
        "batching": cfg.get("batching"),
        "traffic": cfg.get("traffic"),
        "energy": e.energy_kind,
    }
    if "quantization" in drop:
        fields["options"] = {k: v for k, v in options.items() if k not in QUANT_KEYS}
        fields["model"] = model_family(e)
    if "backend" in drop:  # each engine has its own options; the quantisation asked for stays
        fields["options"] = {k: v for k, v in fields["options"].items() if k in QUANT_KEYS}
    for name in drop & {"batch_size", "precision", "backend"}:
        fields.pop(name)
    return json.dumps(fields, sort_keys=True, default=str)


@dataclass(frozen=True)
class Change:
    """One metric from experiment ``before`` to experiment ``after``."""

    metric: str
    before: float
    after: float
    noise: str  # "within" (95% intervals overlap), "outside", or "unknown" (a single run)

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else float("inf")

    @property
    def pct(self) -> float:
        return (self.ratio - 1.0) * 100.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "before": self.before,
            "after": self.after,
            "ratio": self.ratio,
            "noise": self.noise,
        }


def change(before: Experiment, after: Experiment, metric: str) -> Change | None:
    """The change of ``metric`` between two experiments (None when either lacks it)."""
    a, b = before.stat(metric), after.stat(metric)
    if a is None or b is None:
        return None
    overlap = a.overlaps(b)
    noise = "unknown" if overlap is None else ("within" if overlap else "outside")
    return Change(metric, a.mean, b.mean, noise)


def noise_note(c: Change) -> str:
    """`` (within noise)`` / `` (single runs: noise unknown)`` / ''."""
    if c.noise == "within":
        return " (within noise: the 95% intervals overlap)"
    if c.noise == "unknown":
        return " (noise unknown: fewer than 2 runs)"
    return ""


def fmt_j(value: float | None) -> str:
    """Joules with three significant digits."""
    return "-" if value is None else f"{value:.3g} J"


def fmt_s(value: float | None) -> str:
    """Seconds, as ms below one second."""
    if value is None:
        return "-"
    if value >= 0.9995:
        return f"{value:.3g} s"
    return f"{value * 1000:.0f} ms" if value >= 0.1 else f"{value * 1000:.3g} ms"


def fmt_pct(c: Change) -> str:
    return f"{c.pct:+.0f}%"


def fmt_times(c: Change) -> str:
    """``x4.9`` (or ``x0.41``)."""
    return f"x{c.ratio:.2g}" if c.ratio < 1 else f"x{c.ratio:.3g}"


def cite(ids: Iterable[str], short: dict[str, str]) -> str:
    """``[ids 1a2b3c4d, 5e6f7a8b]`` (short prefixes ``lembench results show`` accepts)."""
    shown = [short.get(i, i[:8]) for i in dict.fromkeys(ids)]
    return f"[{'id' if len(shown) == 1 else 'ids'} {', '.join(shown)}]"
