"""Stored runs -> the experiments the advice reasons about.

One ``Experiment`` per (suite, experiment id) with a successful run: the aggregation's summary
statistics (``lembench.results.aggregate.summarise``: mean, std, n, 95% t-interval per metric,
stability warnings) plus the structured config fields the levers and pitfalls need (quantisation
kind, LLM.int8() threshold, parameters, energy estimate flag, hardware). Result files are untrusted
input: every field beyond what the schema guarantees is read defensively.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.contract.registry import option_block
from lembench.advice.sizes import params_from_name
from lembench.errors import UserError
from lembench.results.aggregate import METRICS, model_label, runs_frame, summarise
from lembench.results.scope import energy_scope_of
from lembench.results.summary import Stat, stat_of
from lembench.store import RESULT_FILE, ResultStore, SkippedFile, StoredRun

#: bitsandbytes' LLM.int8() outlier threshold when none is given (BitsAndBytesConfig default).
INT8_DEFAULT_THRESHOLD = 6.0

#: Bits per weight of each engine quantisation option (None: depends on the checkpoint).
QUANT_BITS: dict[str, int | None] = {
    "bnb_int8": 8,
    "bnb_nf4": 4,
    "bnb_fp4": 4,
    "awq": 4,
    "awq_marlin": 4,
    "gptq": None,
    "gptq_marlin": None,
    "fp8": 8,
    "experts_int8": 8,
    "int8_sq": 8,
    "int8_wo": 8,
    "int4_awq": 4,
    "int4_wo": 4,
}

_EXPERIMENT_ID = re.compile(r"^[0-9a-f]{12}$")
# GGUF weight types in file names: Q4_K_M, Q8_0, IQ3_XXS, Q4_1, F16, BF16.
_GGUF_TYPE = re.compile(r"[.-]((?:I?Q\d+(?:_[A-Z0-9]+)*)|BF16|F16|F32)(?=\.gguf$)", re.IGNORECASE)


@dataclass(frozen=True)
class Experiment:
    """One experiment as the advice sees it."""

    experiment_id: str
    suite: str
    backend: str
    model: str  # display label of the model reference
    model_file: str | None  # the file the backend loaded (GGUF), when recorded
    precision: str
    batch_size: int
    workload: str  # request shape without the prompt count, e.g. ``synthetic 32->32``
    input_tokens: int | None  # per request, as configured (None: the dataset's own prompts)
    output_tokens: int | None
    variant: str
    quantization: str | None  # engine option (bnb_int8, awq, ...) or ``gguf:Q4_1``; None: none
    quant_bits: int | None
    int8_threshold: float | None  # as configured; None = bitsandbytes' default (6.0)
    double_quant: bool | None
    params: int | None  # recorded by the harness (largest over the model's experiments)
    hardware: str | None
    device: str | None
    energy_method: str | None
    is_estimate: bool
    n_ok: int
    n_failed: int
    stability: tuple[str, ...]
    stats: dict[str, Stat]
    config: dict[str, Any]
    co2_intensity: float | None = None  # g CO2 per kWh recorded by the runs (one value) or None
    co2_source: str | None = None
    #: The whole-system figures (measured + estimated components) are an estimate while the
    #: ranked ones are measured: a mixed run, shown with its whole-system J/token beside.
    system_is_estimate: bool = False

    def stat(self, metric: str) -> Stat | None:
        return self.stats.get(metric)

    def mean(self, metric: str) -> float | None:
        s = self.stats.get(metric)
        return None if s is None else s.mean

    @property
    def energy_kind(self) -> str:
        return "estimate" if self.is_estimate else "measured"

    @property
    def on_cpu(self) -> bool:
        return str(self.device or self.config.get("device") or "").startswith("cpu")

    @property
    def quant_label(self) -> str:
        """``none``, ``bnb_int8 (threshold 6.0, default)``, ``bnb_nf4 double_quant``,
        ``GGUF Q4_1``."""
        q = self.quantization
        if q is None:
            return "none"
        if q.startswith("gguf:"):
            return f"GGUF {q[5:]}"
        if q == "bnb_int8":
            if self.int8_threshold is None:
                return f"bnb_int8 (threshold {INT8_DEFAULT_THRESHOLD}, default)"
            return f"bnb_int8 (threshold {self.int8_threshold:g})"
        return f"{q} double_quant" if self.double_quant else q

    @property
    def weights_label(self) -> str:
        """The weight format: the quantisation, else the precision (``fp32``)."""
        return self.precision if self.quantization is None else self.quant_label

    def label(self) -> str:
        """A short human description: ``pytorch fp16 bnb_int8 batch 8``."""
        quant = "" if self.quantization is None else f" {self.quant_label}"
        return f"{self.backend} {self.precision}{quant} batch {self.batch_size}"


@dataclass
class Loaded:
    """What ``load`` found."""

    root: Path  # the results root
    suite: str | None  # the suite narrowed to, if any
    experiments: list[Experiment]
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, errors): no ok run
    short: dict[str, str] = field(default_factory=dict)  # experiment id -> short id
    skipped: list[SkippedFile] = field(default_factory=list)  # unusable result files


def resolve(results: Path, suite: str | None) -> tuple[Path, str | None]:
    """(results root, suite) for RESULTS, which is a results root or one suite's folder inside it
    (``<suite>/<experiment>/<run>/result.json``)."""
    results = Path(results)
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist (or is not a folder)")
    if _is_suite_folder(results):
        if suite is not None and suite != results.name:
            raise UserError(
                f"{results} is the folder of suite {results.name!r}, not {suite!r}; pass the "
                f"results root ({results.parent}) with --suite {suite}"
            )
        return results.parent, results.name
    return results, suite


def _is_suite_folder(folder: Path) -> bool:
    """Whether ``folder`` holds ``<experiment id>/<run>/result.json`` (12-hex experiment ids)."""
    return any(
        _EXPERIMENT_ID.match(p.parent.parent.name) and not p.parent.name.startswith(".")
        for p in folder.glob(f"*/*/{RESULT_FILE}")
    )


def load(results: Path, suite: str | None = None, allow_mixed: bool = False) -> Loaded:
    """Every experiment stored under RESULTS (a results root or one suite's folder; ``suite``
    narrows a root). Raises UserError when there is nothing stored, when a suite is unknown, or
    when one experiment's runs mix environments or measured and estimated energy (unless
    ``allow_mixed``)."""
    root, suite = resolve(results, suite)
    firsts: dict[tuple[str, str], dict[str, Any]] = {}
    kinds: dict[tuple[str, str], set[bool]] = {}
    co2: dict[tuple[str, str], set[tuple[float, str]]] = {}

    def tee(runs: Iterable[StoredRun]) -> Iterator[StoredRun]:
        for run in runs:
            r = run.result
            key = (str(r["suite"]), str(r["experiment_id"]))
            ok = r.get("status") == "ok"
            if key not in firsts or (ok and firsts[key].get("status") != "ok"):
                firsts[key] = r
            if ok:
                energy = _dict(r.get("energy"))
                # The kind of the ranked figure: a mixed run (NVML GPU + estimated CPU) is
                # measured, ranked on its measured part.
                ranked, _ = energy_scope_of(energy, _dict(r.get("metrics")))
                kinds.setdefault(key, set()).add(
                    ranked != "measured" and bool(energy.get("is_estimate"))
                )
                intensity = _number(_dict(energy.get("co2")).get("carbon_intensity_g_per_kwh"))
                if intensity is not None:
                    co2.setdefault(key, set()).add((intensity, _co2_source(energy["co2"])))
            yield run

    store = ResultStore(root)
    frame = runs_frame(tee(store.iter_runs(suite)))
    if frame.is_empty():
        where = f"{results}" + (f" for suite {suite!r}" if suite else "")
        if store.skipped:
            where += f" ({store.skipped_note()})"
        raise UserError(f"no stored runs under {where}; run `lembench run SUITE` first")
    if not allow_mixed:
        for (s, eid), seen in kinds.items():
            if len(seen) > 1:
                raise UserError(
                    f"experiment {eid} (suite {s}) mixes measured and estimated energy across "
                    "its runs; pass --allow-mixed to use it anyway (as an estimate)"
                )
    summary = summarise(frame, allow_mixed=allow_mixed)
    experiments: list[Experiment] = []
    failed: list[tuple[str, str]] = []
    for row in summary.iter_rows(named=True):
        key = (row["suite"], row["experiment_id"])
        if not row["n_ok"] or row["j_per_output_token_mean"] is None:
            failed.append((row["experiment_id"], row["errors"] or "no energy per token recorded"))
            continue
        intensities = co2.get(key, set())
        only = next(iter(intensities)) if len(intensities) == 1 else (None, None)
        experiments.append(_experiment(row, firsts[key], *only))
    experiments = _with_model_params(experiments)
    short = short_ids(e.experiment_id for e in experiments)
    return Loaded(root, suite, experiments, failed, short, list(store.skipped.values()))


def _experiment(
    row: dict[str, Any], result: dict[str, Any], intensity: float | None, source: str | None
) -> Experiment:
    cfg = result["config"]
    block = _dict(cfg.get(option_block(str(cfg.get("backend")))))
    provenance_model = _dict(_dict(result.get("provenance")).get("model"))
    model_file = provenance_model.get("file")
    model_file = model_file if isinstance(model_file, str) else None
    quant = block.get("quantization") if isinstance(block.get("quantization"), str) else None
    bits = QUANT_BITS.get(quant) if quant else None
    if quant is None and cfg.get("backend") == "llamacpp":
        gguf = gguf_type(model_file or model_label(cfg.get("model")))
        if gguf is not None:
            quant, bits = f"gguf:{gguf}", gguf_bits(gguf)
    threshold = _number(block.get("llm_int8_threshold")) if quant == "bnb_int8" else None
    double = block.get("double_quant") if isinstance(block.get("double_quant"), bool) else None
    workload = _dict(cfg.get("workload"))
    params = _number(_dict(result.get("flops")).get("params")) or _number(
        provenance_model.get("params")
    )
    stats = {}
    for m in METRICS:
        stat = stat_of(row, m)
        if stat.mean is not None:
            stats[m] = stat
    return Experiment(
        experiment_id=row["experiment_id"],
        suite=row["suite"],
        backend=row["backend"],
        model=row["model"],
        model_file=model_file,
        precision=row["precision"],
        batch_size=int(row["batch_size"]),
        workload=workload_shape(workload),
        input_tokens=_int(workload.get("input_tokens")),
        output_tokens=_int(workload.get("output_tokens")),
        variant=row["variant"] or "",
        quantization=quant,
        quant_bits=bits,
        int8_threshold=threshold,
        double_quant=double,
        params=int(params) if params else None,
        hardware=row["hardware"],
        device=row["device"],
        energy_method=row["energy_method"],
        is_estimate=bool(row["energy_is_estimate"]),
        n_ok=int(row["n_ok"]),
        n_failed=int(row["n_failed"]),
        stability=tuple(row["stability"] or ()),
        stats=stats,
        config=cfg,
        co2_intensity=intensity,
        co2_source=source,
        system_is_estimate=bool(row.get("system_is_estimate"))
        and not bool(row["energy_is_estimate"]),
    )


def _with_model_params(experiments: list[Experiment]) -> list[Experiment]:
    """Give every experiment of a model the largest parameter count recorded for it (a 4-bit
    bitsandbytes model counts its packed weights, half the real number), else the size its name
    states."""
    best: dict[str, int] = {}
    for e in experiments:
        if e.params:
            best[e.model] = max(best.get(e.model, 0), e.params)
    out = []
    for e in experiments:
        params = best.get(e.model) or params_from_name(e.model_file or e.model)
        out.append(replace(e, params=params) if params != e.params else e)
    return out


def workload_shape(workload: dict[str, Any]) -> str:
    """The request shape of a workload, without the prompt count (a sample size, not a different
    job): ``synthetic 32->32``, ``humaneval ->128``, ``jsonl prompts.jsonl ->64``."""
    kind = str(workload.get("kind", "?"))
    out = workload.get("output_tokens", "?")
    if kind == "synthetic":
        return f"synthetic {workload.get('input_tokens', '?')}->{out}"
    if kind == "jsonl":
        return f"jsonl {Path(str(workload.get('path', '?'))).name} ->{out}"
    return f"{kind} ->{out}"


def gguf_type(name: str) -> str | None:
    """The weight type in a GGUF file name (``Q4_1`` of ``SmolLM2-135M-Instruct.Q4_1.gguf``)."""
    if name.lower() == "smollm2-135m":  # the bundled alias: SmolLM2-135M-Instruct.Q4_1.gguf
        return "Q4_1"
    match = _GGUF_TYPE.search(Path(name).name)
    return match.group(1).upper() if match else None


def gguf_bits(kind: str) -> int | None:
    """Nominal bits per weight of a GGUF type (Q4_K_M -> 4, F16 -> 16)."""
    match = re.match(r"I?Q(\d+)", kind)
    if match:
        return int(match.group(1))
    return {"F16": 16, "BF16": 16, "F32": 32}.get(kind)


def short_ids(ids: Iterable[str], length: int = 8) -> dict[str, str]:
    """The shortest prefix (at least ``length`` characters) that tells each id apart from the
    others; ``lembench results show`` accepts any prefix."""
    unique = sorted(set(ids))
    out: dict[str, str] = {}
    for i, eid in enumerate(unique):
        n = length
        for other in (unique[i - 1] if i else "", unique[i + 1] if i + 1 < len(unique) else ""):
            while n < len(eid) and other[:n] == eid[:n]:
                n += 1
        out[eid] = eid[:n]
    return out


def _co2_source(co2: dict[str, Any]) -> str:
    where = " ".join(str(v) for v in (co2.get("country_iso_code"), co2.get("region")) if v)
    method = co2.get("method") or "recorded"
    return f"{method} ({where})" if where else str(method)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
