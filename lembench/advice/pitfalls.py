"""Known pitfalls, detected in the user's own measurements.

``detect(experiments)`` returns ``Pitfall`` records, each with a code, a status, a statement and
the experiment ids it rests on:

- ``detected``: the data shows the problem (a measured pair, quantified);
- ``unverified``: a risky configuration was measured but its counterpart was not, so the data
  cannot tell; the record says which experiment to run;
- ``note``: something about the data itself (estimated energy, too few cycles, high variance).

``lembench audit`` uses the same records as evidence for its static findings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lembench.advice import suggest
from lembench.advice.compare import change, cite, fmt_j, fmt_pct, fmt_times, key, noise_note
from lembench.advice.data import INT8_DEFAULT_THRESHOLD, Experiment
from lembench.advice.scenarios import Scenario, check
from lembench.advice.sizes import SMALL_MODEL_PARAMS, human
from lembench.advice.suggest import Suggestion
from lembench.results.aggregate import HIGH_VARIANCE, TOO_FEW_CYCLES

INT8 = "int8_default_threshold"
FOUR_BIT = "four_bit_small_model"
BATCH_ONE = "batch_size_one"
POWER = "power_not_efficiency"
ESTIMATED = "estimated_energy"

#: Where each pitfall is explained (also in docs/advise.md).
REFERENCES: dict[str, tuple[str, ...]] = {
    INT8: (
        "Dettmers et al., LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale, "
        "NeurIPS 2022, arXiv:2208.07339",
        "https://huggingface.co/blog/hf-bitsandbytes-integration",
    ),
    FOUR_BIT: ("https://huggingface.co/docs/transformers/quantization/bitsandbytes",),
    BATCH_ONE: ("https://huggingface.co/docs/transformers/main/en/llm_tutorial",),
    POWER: (
        "energy = average power x time: a config that draws less but runs longer can cost more",
    ),
}

#: 4-bit kinds whose weights are dequantised for every matrix multiply (GGUF types are left out:
#: llama.cpp's CPU kernels work on the quantised blocks).
FOUR_BIT_KINDS = ("bnb_nf4", "bnb_fp4", "awq", "awq_marlin", "int4_awq", "int4_wo")
_SIXTEEN = ("fp16", "bf16")
#: A power difference smaller than this is not called "draws less power".
POWER_MARGIN = 0.05


@dataclass(frozen=True)
class Pitfall:
    """One finding about the measurements."""

    code: str
    status: str  # detected | unverified | note
    text: str
    ids: tuple[str, ...]
    suggestion: Suggestion | None = None
    models: tuple[str, ...] = ()  # model labels involved (audit matches evidence by model)

    def line(self, short: dict[str, str]) -> str:
        return f"{self.text} {cite(self.ids, short)}" if self.ids else self.text

    def as_dict(self, short: dict[str, str]) -> dict[str, Any]:
        return {
            "code": self.code,
            "status": self.status,
            "text": self.line(short),
            "ids": list(self.ids),
            "suggestion": None if self.suggestion is None else self.suggestion.as_dict(),
            "references": list(REFERENCES.get(self.code, ())),
        }


def _est(e: Experiment) -> str:
    """`` (estimated energy)`` for an estimate: wherever its number appears, it says so."""
    return " (estimated energy)" if e.is_estimate else ""


def detect(experiments: Sequence[Experiment], scn: Scenario | None = None) -> list[Pitfall]:
    """Every pitfall the measurements show (or leave open). ``scn`` (optional) limits the batch
    size pitfall to larger batches that still meet its latency targets."""
    exps = list(experiments)
    found: list[Pitfall] = []
    found += _int8(exps)
    found += _four_bit(exps)
    found += _batch_one(exps, scn)
    found += _power(exps)
    found += _data_notes(exps)
    return found


def _sixteen_bit_counterpart(e: Experiment, exps: list[Experiment]) -> Experiment | None:
    """The unquantised fp16/bf16 experiment that is otherwise like ``e`` (its own precision
    first, then fp16, then bf16)."""
    k = key(e, ["quantization", "precision"])
    cands = [
        c
        for c in exps
        if c.quantization is None
        and c.precision in _SIXTEEN
        and key(c, ["quantization", "precision"]) == k
    ]
    cands.sort(key=lambda c: (c.precision != e.precision, c.precision != "fp16", -c.n_ok))
    return cands[0] if cands else None


def _sixteen_bit_run(e: Experiment, quantization: str) -> Suggestion:
    experiment: dict[str, Any] = {"device": "cuda"}
    if e.precision not in _SIXTEEN:
        experiment["precision"] = "fp16"
    return Suggestion(
        f"measure the same model unquantised in 16-bit beside {quantization}",
        {"experiment": experiment, "sweep": {"pytorch.quantization": [None, quantization]}},
        e,
    )


def _int8(exps: list[Experiment]) -> list[Pitfall]:
    out = []
    for e in exps:
        if e.quantization != "bnb_int8" or e.int8_threshold not in (None, INT8_DEFAULT_THRESHOLD):
            continue
        ref = _sixteen_bit_counterpart(e, exps)
        if ref is None:
            out.append(
                Pitfall(
                    INT8,
                    "unverified",
                    f"{e.model} runs bitsandbytes LLM.int8() with the default outlier threshold "
                    f"{INT8_DEFAULT_THRESHOLD} (mixed-precision decomposition, usually slower and "
                    "costlier than fp16), but no fp16/bf16 counterpart was measured, so the data "
                    "cannot tell",
                    (e.experiment_id,),
                    _sixteen_bit_run(e, "bnb_int8"),
                    (e.model,),
                )
            )
            continue
        j = change(ref, e, "j_per_output_token")
        if j is None or j.after <= j.before or j.noise == "within":
            continue  # the data does not show it here
        t = change(ref, e, "throughput_out_tok_s")
        speed = f", throughput {fmt_times(t)}" if t is not None else ""
        out.append(
            Pitfall(
                INT8,
                "detected",
                f"bitsandbytes INT8 with the default threshold {INT8_DEFAULT_THRESHOLD} costs "
                f"{fmt_pct(j)} energy per token against {ref.precision} ({fmt_j(j.before)} -> "
                f"{fmt_j(j.after)}){noise_note(j)}{speed} ({e.model}, batch {e.batch_size})"
                f"{_est(e)}; the fp16 outlier path of LLM.int8() runs beside the int8 one",
                (ref.experiment_id, e.experiment_id),
                Suggestion(
                    "use fp16/bf16 weights when they fit in memory, or measure "
                    "llm_int8_threshold: 0.0 (pure INT8, no outlier path: check output quality)",
                    {
                        "experiment": {
                            "pytorch": {"quantization": "bnb_int8", "llm_int8_threshold": 0.0}
                        }
                    },
                    e,
                ),
                (e.model,),
            )
        )
    return out


def _four_bit(exps: list[Experiment]) -> list[Pitfall]:
    out = []
    for e in exps:
        if e.quantization not in FOUR_BIT_KINDS or not e.params or e.params >= SMALL_MODEL_PARAMS:
            continue
        size = f"{e.model} ({human(e.params)} parameters)"
        ref = _sixteen_bit_counterpart(e, exps)
        if ref is None:
            out.append(
                Pitfall(
                    FOUR_BIT,
                    "unverified",
                    f"4-bit weights ({e.quant_label}) on {size}: below 3B parameters the "
                    "dequantisation in every matrix multiply usually costs more than the memory "
                    "traffic it saves, but no fp16/bf16 counterpart was measured",
                    (e.experiment_id,),
                    _sixteen_bit_run(e, e.quantization)
                    if e.backend == "pytorch"
                    else suggest.quantization(e),
                    (e.model,),
                )
            )
            continue
        j = change(ref, e, "j_per_output_token")
        if j is None or j.after <= j.before or j.noise == "within":
            continue
        t = change(ref, e, "throughput_out_tok_s")
        speed = f", throughput {fmt_times(t)}" if t is not None else ""
        out.append(
            Pitfall(
                FOUR_BIT,
                "detected",
                f"4-bit weights ({e.quant_label}) on {size} cost {fmt_pct(j)} energy per token "
                f"against {ref.precision} ({fmt_j(j.before)} -> {fmt_j(j.after)}){noise_note(j)}"
                f"{speed} (batch {e.batch_size}){_est(e)}: at this size dequantisation "
                "outweighs the memory saved",
                (ref.experiment_id, e.experiment_id),
                Suggestion(f"serve {e.model} in {ref.precision} (it is small enough)", {}, ref),
                (e.model,),
            )
        )
    return out


def _batch_one(exps: list[Experiment], scn: Scenario | None) -> list[Pitfall]:
    groups: dict[str, list[Experiment]] = defaultdict(list)
    for e in exps:
        if e.config.get("traffic"):  # the engine batches what is in flight: batch_size is unused
            continue
        groups[key(e, ["batch_size"])].append(e)
    out: list[Pitfall] = []
    only_one: list[Experiment] = []
    for members in groups.values():
        ones = [e for e in members if e.batch_size == 1]
        if not ones:
            continue
        one = max(ones, key=lambda e: e.n_ok)
        larger = [e for e in members if e.batch_size > 1]
        if not larger:
            only_one.append(one)
            continue
        if scn is not None:
            larger = [e for e in larger if check(e, scn).meets]
        cheaper = []
        for e in larger:
            c = change(one, e, "j_per_output_token")
            if c is not None and c.after < c.before and c.noise != "within":
                cheaper.append((c.after, e, c))
        if not cheaper:
            continue
        _, best, c = min(cheaper, key=lambda x: x[0])
        within = f" and still meets the {scn.name} targets" if scn and scn.targets else ""
        out.append(
            Pitfall(
                BATCH_ONE,
                "detected",
                f"batch 1 uses x{1 / c.ratio:.3g} the energy per token of batch {best.batch_size} "
                f"({fmt_j(c.before)} vs {fmt_j(c.after)}){noise_note(c)} for {one.model}, "
                f"{one.workload}, {one.backend} {one.weights_label}{_est(one)}; batch "
                f"{best.batch_size} is "
                f"possible here{within}",
                (one.experiment_id, best.experiment_id),
                None,
                (one.model,),
            )
        )
    if only_one:
        models = tuple(dict.fromkeys(e.model for e in only_one))
        out.append(
            Pitfall(
                BATCH_ONE,
                "unverified",
                f"only batch size 1 was measured for {len(only_one)} configuration"
                f"{'s' * (len(only_one) != 1)} ({', '.join(models)}): batching usually cuts the "
                "energy per token, and the data cannot say by how much",
                tuple(e.experiment_id for e in only_one),
                suggest.for_lever("batch_size", only_one[0]),
                models,
            )
        )
    return out


def _power(exps: list[Experiment]) -> list[Pitfall]:
    groups: dict[tuple[str, str, str], list[Experiment]] = defaultdict(list)
    for e in exps:
        if e.mean("avg_power_w") is not None:
            groups[(e.model, e.workload, e.energy_kind)].append(e)
    out = []
    for (model, workload, _), members in groups.items():
        low = min(members, key=lambda e: e.mean("avg_power_w") or 0.0)
        best = min(members, key=lambda e: e.mean("j_per_output_token") or 0.0)
        if low is best:
            continue
        p = change(best, low, "avg_power_w")
        j = change(best, low, "j_per_output_token")
        if p is None or j is None or p.ratio > 1 - POWER_MARGIN or j.noise == "within":
            continue
        estimate = " (estimated energy)" if low.is_estimate else ""
        out.append(
            Pitfall(
                POWER,
                "detected",
                f"{low.label()} draws {-p.pct:.0f}% less power than {best.label()} but uses "
                f"x{j.ratio:.3g} the energy per token{noise_note(j)} ({model}, {workload})"
                f"{estimate}: energy is power x time, and the lower-power configuration runs "
                "longer; rank by J/token, not by watts",
                (low.experiment_id, best.experiment_id),
                None,
                (model,),
            )
        )
    return out


def _data_notes(exps: list[Experiment]) -> list[Pitfall]:
    out = []
    estimates = [e for e in exps if e.is_estimate]
    if estimates:
        methods = sorted({e.energy_method or "?" for e in estimates})
        every = len(estimates) == len(exps)
        out.append(
            Pitfall(
                ESTIMATED,
                "note",
                (
                    "every energy figure here is an estimate"
                    if every
                    else f"{len(estimates)} of {len(exps)} experiments have estimated energy"
                )
                + f" ({', '.join(methods)}): modelled from a power model (TDP and load), not "
                "measured by a meter; estimates are never ranked with measurements. Run on a "
                "machine with RAPL or NVML for measured numbers (`lembench doctor` says what "
                "this one has)",
                tuple(e.experiment_id for e in estimates),
                None,
                tuple(dict.fromkeys(e.model for e in estimates)),
            )
        )
    for code, why in (
        (TOO_FEW_CYCLES, "fewer than 3 successful runs: no usable confidence interval"),
        (
            HIGH_VARIANCE,
            "runs that vary beyond the suite's cv_threshold (10% by default) in J/token or "
            "throughput",
        ),
    ):
        hit = [e for e in exps if code in e.stability]
        if hit:
            out.append(
                Pitfall(
                    code,
                    "note",
                    f"{len(hit)} experiment{'s' * (len(hit) != 1)} with {why}; differences "
                    "between them may be noise",
                    tuple(e.experiment_id for e in hit),
                    suggest.more_cycles(hit[0]),
                    tuple(dict.fromkeys(e.model for e in hit)),
                )
            )
    return out
