"""Stored runs -> experiments: everything the report shows, gathered in one pass over the store.

The aggregated table comes from ``lembench.results.aggregate`` (``runs_frame`` + ``summarise``:
mean, std, n and 95% interval of every metric, hardware, stability). Beside it this module keeps
what the experiment pages need of each run (per-cycle numbers, warnings, timeline file, request
timings, provenance). Result files are untrusted input: every field is read defensively.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lembench.errors import UserError
from lembench.results.aggregate import runs_frame, summarise
from lembench.results.scope import RANKED, energy_scope_of
from lembench.results.summary import Stat  # noqa: F401 - the report's name for it
from lembench.store import ResultStore, SkippedFile, StoredRun

#: Per-run numbers the experiment pages show, by name (the aggregation's metric names): where
#: each comes from in a result's ``metrics``.
RUN_METRICS: dict[str, tuple[str, str | None]] = {
    "j_per_output_token": ("j_per_output_token", None),
    "j_per_output_token_net": ("j_per_output_token_net", None),
    "j_per_output_token_system": ("j_per_output_token", None),
    "throughput_out_tok_s": ("throughput_out_tok_s", None),
    "ttft_p50_s": ("ttft_s", "p50"),
    "ttft_p99_s": ("ttft_s", "p99"),
    "itl_p50_s": ("itl_s", "p50"),
    "e2e_p50_s": ("e2e_latency_s", "p50"),
    "avg_power_w": ("avg_power_w", None),
    "idle_power_w": ("idle_power_w", None),
    "flops_per_output_token": ("flops_per_output_token", None),
    "mfu": ("mfu", None),
    "mbu": ("mbu", None),
    "energy_total_j": ("energy_total_j", None),
    "energy_net_j": ("energy_net_j", None),
    "energy_prefill_j": ("energy_prefill_j", None),
    "energy_decode_j": ("energy_decode_j", None),
    "j_per_request": ("j_per_request", None),
    "co2_g": ("co2_g", None),
    "duration_s": ("duration_s", None),
    "tokens_out": ("tokens_out", None),
    "pass_at_1": ("pass_at_1", None),
    "j_per_solved_task": ("j_per_solved_task", None),
    "j_per_request_p50": ("j_per_request_attributed", "p50"),
    "j_per_request_p90": ("j_per_request_attributed", "p90"),
    "j_per_request_p99": ("j_per_request_attributed", "p99"),
    "goodput_fraction": ("goodput_fraction", None),
    "j_per_good_output_token": ("j_per_good_output_token", None),
    "j_per_output_token_steady_state": ("j_per_output_token_steady_state", None),
}


def number(value: Any) -> float | None:
    """A finite number from untrusted JSON, else None (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def text(value: Any, default: str = "") -> str:
    """A display string from untrusted JSON."""
    return default if value is None else str(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


_NUMBER_TYPES = (int, float)


def request_batches(requests: Any) -> list[tuple[float, float | None, float]]:
    """Per static batch: (t_start, t_first_token, t_end) relative to the window start.

    Runs are read by the hundred thousand and hold hundreds of requests each: this loop avoids
    per-field helper calls (type checks inline; a malformed request is skipped)."""
    if not isinstance(requests, list):
        return []
    spans: dict[Any, list[Any]] = {}
    for r in requests:
        try:
            start, end = r["t_start_s"], r["t_end_s"]
            first, key = r.get("t_first_token_s"), r.get("batch", r.get("index"))
            if type(start) not in _NUMBER_TYPES or type(end) not in _NUMBER_TYPES:
                continue
            if type(first) not in _NUMBER_TYPES:
                first = None
            span = spans.get(key)
            if span is None:
                spans[key] = [start, first, end]
                continue
        except (TypeError, KeyError, AttributeError):  # not a dict, or an unhashable batch key
            continue
        if start < span[0]:
            span[0] = start
        if first is not None and (span[1] is None or first > span[1]):
            span[1] = first
        if end > span[2]:
            span[2] = end
    return sorted(
        (float(a), None if f is None else float(f), float(z)) for a, f, z in spans.values()
    )


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class RunInfo:
    """What an experiment page shows of one run (the full result is not kept in memory)."""

    run_id: str
    cycle: int | None
    status: str
    error: str | None
    error_message: str | None
    started_at: str
    path: Path
    energy_method: str | None  # of the ranked figure (the measured part when there is one)
    is_estimate: bool  # the ranked figure is an estimate (nothing was measured)
    numbers: dict[str, float | None]
    warnings: list[tuple[str, str]]
    batches: list[tuple[float, float | None, float]]
    phases: dict[str, Any] | None
    baseline: dict[str, Any] | None
    timeline_file: Path | None  # only a plain file name inside the run folder is trusted
    quality: dict[str, Any] | None = None  # the result's quality block (scored workloads)
    system_method: str | None = None  # every component's method (measured + estimated)
    system_is_estimate: bool = False  # the whole-system figure includes a modelled component

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Experiment:
    """One experiment (suite + experiment id) and its runs."""

    suite: str
    experiment_id: str
    config: dict[str, Any]
    cycles: int | None
    provenance: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    representative: str = ""  # run id the provenance and environment come from
    runs: list[RunInfo] = field(default_factory=list)
    page: str = ""  # site-relative path of its page (set by the builder)

    @property
    def key(self) -> tuple[str, str]:
        return (self.suite, self.experiment_id)

    @property
    def ok_runs(self) -> list[RunInfo]:
        return [r for r in self.runs if r.ok]

    @property
    def energy_class(self) -> str:
        """``measured``, ``estimate`` (any successful run's energy is modelled) or ``none``."""
        ok = [r for r in self.ok_runs if r.numbers.get("j_per_output_token") is not None]
        if not ok:
            return "none"
        return "estimate" if any(r.is_estimate for r in ok) else "measured"

    @property
    def methods(self) -> list[str]:
        return sorted({r.energy_method for r in self.ok_runs if r.energy_method})

    def warning_codes(self) -> list[str]:
        return sorted({code for r in self.runs for code, _ in r.warnings})


def run_info(run: StoredRun) -> RunInfo:
    """Extract the page-relevant parts of one stored run."""
    r = run.result
    energy = _dict(r.get("energy"))
    # The ranked J/token is the measured part when any component was measured (as the
    # aggregation ranks it); the whole-system one is kept as j_per_output_token_system.
    ranked, m = energy_scope_of(energy, _dict(r.get("metrics")))
    measured = ranked == "measured"
    error = _dict(r.get("error"))
    numbers: dict[str, float | None] = {}
    for name, (key, sub) in RUN_METRICS.items():
        value = m.get(key)
        numbers[name] = number(_dict(value).get(sub) if sub else value)
    for name, (measured_key, system_key) in RANKED.items():
        numbers[name] = number(m.get(measured_key if measured else system_key))
    timeline = _dict(r.get("timeline"))
    file = timeline.get("file")
    timeline_file = run.path / file if isinstance(file, str) and _SAFE_NAME.match(file) else None
    cycle = r.get("cycle")
    return RunInfo(
        run_id=text(r.get("run_id"), run.path.name),
        cycle=cycle if isinstance(cycle, int) and not isinstance(cycle, bool) else None,
        status=text(r.get("status"), "unknown"),
        error=text(error.get("reason")) or None,
        error_message=text(error.get("message")) or None,
        started_at=text(r.get("started_at")),
        path=run.path,
        energy_method=(text(_dict(energy.get("scope")).get("measured_method")) if measured else "")
        or text(energy.get("method"))
        or None,
        is_estimate=not measured and bool(energy.get("is_estimate")),
        system_method=text(energy.get("method")) or None,
        system_is_estimate=bool(energy.get("is_estimate")),
        numbers=numbers,
        warnings=[
            (text(w.get("code"), "?"), text(w.get("message")))
            for w in _list(r.get("warnings"))
            if isinstance(w, dict)
        ],
        batches=request_batches(r.get("requests")),
        phases=_dict(energy.get("phases")) or None,
        baseline=_dict(energy.get("baseline")) or None,
        timeline_file=timeline_file,
        quality=_dict(r.get("quality")) or None,
    )


@dataclass
class Collected:
    """The report's data: the aggregation's tables and the experiments behind them."""

    runs: pl.DataFrame  # runs_frame: one row per run
    summary: pl.DataFrame  # summarise: one row per experiment
    experiments: dict[tuple[str, str], Experiment]
    skipped: list[SkippedFile] = field(default_factory=list)  # unusable result files

    @property
    def n_runs(self) -> int:
        return sum(len(e.runs) for e in self.experiments.values())


def collect(results_dir: Path, suite: str | None = None, allow_mixed: bool = False) -> Collected:
    """Read every stored run under ``results_dir`` (of one suite, or all) once, aggregate them and
    group them into experiments. Raises UserError when there is nothing to report or when one
    experiment mixes environments or measured/estimated energy (unless ``allow_mixed``)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"results folder {results_dir} does not exist (or is not a folder)")
    experiments: dict[tuple[str, str], Experiment] = {}
    has_ok_representative: set[tuple[str, str]] = set()

    def tee(runs: Iterable[StoredRun]) -> Iterator[StoredRun]:
        for run in runs:
            r = run.result
            key = (text(r.get("suite"), "?"), text(r.get("experiment_id"), "?"))
            exp = experiments.get(key)
            if exp is None:
                cycles = r.get("cycles")
                exp = experiments[key] = Experiment(
                    suite=key[0],
                    experiment_id=key[1],
                    config=_dict(r.get("config")),
                    cycles=cycles if isinstance(cycles, int) else None,
                )
            info = run_info(run)
            exp.runs.append(info)
            # Provenance and environment of the first successful run (else the first run).
            if not exp.representative or (info.ok and key not in has_ok_representative):
                if info.ok:
                    has_ok_representative.add(key)
                exp.representative = info.run_id
                exp.provenance = _dict(r.get("provenance"))
                exp.environment = _dict(r.get("environment"))
            yield run

    store = ResultStore(results_dir)
    frame = runs_frame(tee(store.iter_runs(suite)))
    if not experiments:
        where = f"{results_dir}" + (f" for suite {suite!r}" if suite else "")
        if store.skipped:
            where += f" ({store.skipped_note()})"
        if not suite and next(results_dir.glob("*/*/result.json"), None) is not None:
            raise UserError(
                f"no stored runs under {where}: it looks like one suite's folder; pass the "
                f"results root ({results_dir.parent}) and --suite {results_dir.name}"
            )
        raise UserError(f"no stored runs under {where}; run `lembench run SUITE` first")
    for exp in experiments.values():
        exp.runs.sort(key=lambda r: (r.cycle if r.cycle is not None else 0, r.run_id))
    if not allow_mixed:
        check_mixed(experiments.values())
    # summarise refuses experiments whose runs come from different environments (GPUs, driver,
    # CPU, versions) unless allow_mixed: one line, exit 2, naming --allow-mixed.
    summary = summarise(frame, allow_mixed=allow_mixed)
    return Collected(frame, summary, experiments, list(store.skipped.values()))


def check_mixed(experiments: Iterable[Experiment]) -> None:
    """Refuse to average runs of one experiment that are partly measured and partly estimated
    (the aggregation checks the environment; this checks the energy method's kind)."""
    for exp in experiments:
        kinds = {r.is_estimate for r in exp.ok_runs if r.energy_method}
        if len(kinds) > 1:
            raise UserError(
                f"experiment {exp.experiment_id} (suite {exp.suite}) mixes measured and estimated "
                "energy across its runs; pass --allow-mixed to report it anyway (as an estimate)"
            )
