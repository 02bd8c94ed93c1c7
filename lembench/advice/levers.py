"""What each lever changed in the user's own measurements.

A lever is one of batch size, precision, quantisation and backend. For each, experiments that
differ only in that lever (``compare.key`` without it) are grouped; within a group every other value
is compared with a reference value (the smallest batch, the widest precision, no quantisation, the
pytorch backend) and the measured change in J/output token, throughput, power and latency is
reported with the ids it rests on. A lever no pair measures gets the experiment that would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lembench.advice import suggest
from lembench.advice.compare import (
    Change,
    change,
    cite,
    fmt_j,
    fmt_pct,
    fmt_s,
    fmt_times,
    key,
    noise_note,
)
from lembench.advice.data import Experiment
from lembench.advice.suggest import Suggestion

LEVERS = ("batch_size", "precision", "quantization", "backend")
LABELS = {
    "batch_size": "batch size",
    "precision": "precision",
    "quantization": "quantisation",
    "backend": "backend",
}
_PRECISION_RANK = {"fp32": 0, "fp16": 1, "bf16": 2}
_LATENCY_LABELS = {"ttft_p99_s": "TTFT p99", "itl_p99_s": "ITL p99", "e2e_p99_s": "E2E p99"}


def value(e: Experiment, lever: str) -> Any:
    """The lever's value in ``e``."""
    if lever == "batch_size":
        return e.batch_size
    if lever == "precision":
        return e.precision
    if lever == "quantization":
        return e.quant_label
    return e.backend


def _order(e: Experiment, lever: str) -> tuple[Any, ...]:
    """Sort key: the reference value first."""
    if lever == "batch_size":
        return (e.batch_size,)
    if lever == "precision":
        return (_PRECISION_RANK.get(e.precision, 9), e.precision)
    if lever == "quantization":
        return (e.quantization is not None, -(e.quant_bits or 0), e.quant_label)
    return (e.backend != "pytorch", e.backend)


@dataclass(frozen=True)
class Step:
    """One measured change of a lever: ``before`` (the reference) -> ``after``."""

    lever: str
    before: Experiment
    after: Experiment
    changes: dict[str, Change]
    note: str = ""

    def context(self) -> str:
        """What stayed the same, briefly."""
        e = self.before
        parts = [e.model, e.workload]
        if self.lever != "backend":
            parts.append(e.backend)
        if self.lever != "precision":
            parts.append(e.precision)
        if self.lever not in ("quantization", "backend") and e.quantization:
            parts.append(e.quant_label)
        if self.lever != "batch_size":
            parts.append(f"batch {e.batch_size}")
        if e.hardware:
            parts.append(e.hardware)
        return ", ".join(parts)

    def text(self, short: dict[str, str]) -> str:
        """``describe()`` with the ids it rests on."""
        ids = cite([self.before.experiment_id, self.after.experiment_id], short)
        return f"{self.describe()} {ids}"

    def describe(self) -> str:
        """``batch 1 -> 8: J/token -74% (0.31 J -> 0.081 J), throughput x4.9, ...``."""
        a, b = value(self.before, self.lever), value(self.after, self.lever)
        name = "batch" if self.lever == "batch_size" else LABELS[self.lever]
        parts = []
        j = self.changes.get("j_per_output_token")
        if j is not None:
            estimate = "estimated " if self.before.is_estimate else ""
            parts.append(
                f"{estimate}J/token {fmt_pct(j)} ({fmt_j(j.before)} -> {fmt_j(j.after)})"
                + noise_note(j)
            )
        t = self.changes.get("throughput_out_tok_s")
        if t is not None:
            parts.append(f"throughput {fmt_times(t)}")
        p = self.changes.get("avg_power_w")
        if p is not None:
            parts.append(f"power {fmt_pct(p)}")
        for metric, label in _LATENCY_LABELS.items():
            c = self.changes.get(metric)
            if c is not None:
                parts.append(f"{label} {fmt_times(c)} ({fmt_s(c.before)} -> {fmt_s(c.after)})")
        note = f"; {self.note}" if self.note else ""
        return f"{name} {a} -> {b}: {', '.join(parts)}{note}"

    def as_dict(self, short: dict[str, str]) -> dict[str, Any]:
        return {
            "lever": self.lever,
            "from": value(self.before, self.lever),
            "to": value(self.after, self.lever),
            "context": self.context(),
            "changes": {m: c.as_dict() for m, c in self.changes.items()},
            "energy_is_estimate": self.before.is_estimate,
            "note": self.note or None,
            "ids": [self.before.experiment_id, self.after.experiment_id],
            "text": self.text(short),
        }


@dataclass(frozen=True)
class LeverReport:
    """Every measured step of one lever, or the experiment that would measure it."""

    lever: str
    steps: tuple[Step, ...]
    suggestion: Suggestion | None

    def summary(self) -> str:
        """``J/token fell in 3 of 4 comparisons`` (outside noise where known)."""
        js = [
            s.changes["j_per_output_token"] for s in self.steps if "j_per_output_token" in s.changes
        ]
        if not js:
            return "not measured"
        down = sum(c.after < c.before for c in js)
        clear = sum(c.noise == "outside" for c in js)
        return f"J/token fell in {down} of {len(js)} comparison{'s' * (len(js) != 1)}" + (
            f" ({clear} outside noise)" if clear else ""
        )


def analyse(
    experiments: Sequence[Experiment],
    anchor: Experiment | None = None,
    latency: Sequence[str] = ("ttft_p99_s", "e2e_p99_s"),
) -> list[LeverReport]:
    """One report per lever. ``anchor`` (e.g. the recommended experiment) is what a suggestion
    builds on when a lever has no measured pair; ``latency`` the latency metrics shown."""
    metrics = ("j_per_output_token", "throughput_out_tok_s", "avg_power_w", *latency)
    reports = []
    for lever in LEVERS:
        groups: dict[str, list[Experiment]] = defaultdict(list)
        for e in experiments:
            groups[key(e, [lever])].append(e)
        steps = []
        for members in groups.values():
            by_value: dict[Any, Experiment] = {}
            for e in sorted(members, key=lambda e: (_order(e, lever), -e.n_ok)):
                by_value.setdefault(value(e, lever), e)  # duplicates: the one with most runs
            if len(by_value) < 2:
                continue
            ref, *others = by_value.values()
            for other in others:
                changes = {m: c for m in metrics if (c := change(ref, other, m)) is not None}
                steps.append(Step(lever, ref, other, changes, _note(lever, ref, other)))
        steps.sort(
            key=lambda s: (s.before.model, s.before.workload, s.context(), _order(s.after, lever))
        )
        base = _anchor(lever, experiments, anchor)
        suggestion = suggest.for_lever(lever, base) if not steps and base is not None else None
        reports.append(LeverReport(lever, tuple(steps), suggestion))
    return reports


def _anchor(
    lever: str, experiments: Sequence[Experiment], anchor: Experiment | None
) -> Experiment | None:
    """What a suggestion for ``lever`` builds on: ``anchor``, else the lowest-J/token experiment
    (measured before estimated). For precision, an engine where it sets the weights' dtype
    (llama.cpp's weights keep their GGUF type; precision only picks its KV cache type)."""
    pool = [e for e in experiments if not e.is_estimate] or list(experiments)
    if lever == "precision" and (anchor is None or anchor.backend == "llamacpp"):
        pool = [e for e in pool if e.backend != "llamacpp"] or pool
        anchor = None
    if anchor is not None:
        return anchor
    return min(pool, key=lambda e: e.mean("j_per_output_token") or 0.0) if pool else None


def _note(lever: str, a: Experiment, b: Experiment) -> str:
    """What else differs in a backend comparison (each engine has its own options and may run the
    same model file at a different weight format)."""
    if lever != "backend":
        return ""
    if a.quantization != b.quantization:
        return (
            f"the weights differ with the engine: {a.backend} {a.weights_label}, "
            f"{b.backend} {b.weights_label}"
        )
    return ""
