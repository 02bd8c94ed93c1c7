"""The leaderboard: one row per experiment, its columns, ranks and the exported table.

Measured and estimated energy are never ranked together, and rows are ranked only against rows of
their own group (same hardware, same task: ``lembench.report.groups``): measured rows get rank
numbers 1..k within their group by gross J/output token (the figure every measured row has; net
needs an idle baseline), rows whose energy is wholly modelled are listed in their own section
without a rank, and rows without an energy figure (failed, or no meter) come last. A row with a
measured component is ranked on the measured part alone (an NVML GPU beside a codecarbon CPU/DRAM
estimate: the GPU energy), its whole-system figure (measured + estimated) shown beside it, marked
estimate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from harness.contract.registry import option_block
from lembench.report.data import Collected, Experiment, number, text
from lembench.report.groups import group_label, rank_within_groups, task_label
from lembench.results.aggregate import model_label, variant_label, workload_label
from lembench.results.summary import Stat, stat_of

SECTIONS = (
    (
        "measured",
        "Measured energy",
        "Ranked within each group (same hardware and task) by mean gross J per output token; "
        "rows of different groups are never ranked against each other.",
    ),
    (
        "estimate",
        "Estimated energy",
        "Energy modelled, not measured (e.g. codecarbon's TDP/RAM model): listed by J/token, "
        "never ranked against measurements.",
    ),
    ("none", "No energy figure", "Every run failed, or no meter produced an energy figure."),
)


@dataclass(frozen=True)
class Column:
    """A leaderboard column: a row attribute (``kind`` text/int) or a metric (``kind`` metric)."""

    key: str
    label: str
    kind: str = "text"  # text | int | metric
    fmt: str = "sig"  # sig | ms | pct | si (metric columns)
    ci: bool = False  # show the 95% CI half-width
    title: str = ""
    filter: bool = False  # offered as a filter
    default: bool = True  # shown until the reader picks columns (the rest: column chooser)


COLUMNS: tuple[Column, ...] = (
    Column(
        "rank",
        "# in group",
        "int",
        title="Rank among the measured rows of the same hardware and task (estimates are not "
        "ranked; rows of other groups are not compared)",
    ),
    Column(
        "rating",
        "Rating",
        "int",
        title="1-5 stars within the group by J/token (best fifth 5 stars); see the methodology",
    ),
    Column("model", "Model", filter=True),
    Column("params", "Params", "int", title="Model parameters (as loaded)"),
    Column("backend", "Backend", filter=True),
    Column("precision", "Precision", filter=True),
    Column("batch_size", "Batch", "int"),
    Column("workload", "Workload"),
    Column(
        "weights",
        "Weights",
        title="The weights' real format: GGUF type and the dtype it ran in, or random (dummy)",
    ),
    Column(
        "variant",
        "Variant",
        filter=True,
        title="Engine options, weights, decoding, traffic",
        default=False,
    ),
    Column("hardware", "Hardware", filter=True),
    Column(
        "j_per_output_token",
        "J/token gross",
        "metric",
        ci=True,
        title="Energy per output token over the window, idle included (mean ± 95% CI)",
    ),
    Column(
        "j_per_output_token_net",
        "J/token net",
        "metric",
        ci=True,
        title="Energy per output token minus idle power x window (mean ± 95% CI)",
        default=False,
    ),
    Column(
        "j_per_request",
        "J/request",
        "metric",
        ci=True,
        title="Gross energy of the window per request (mean ± 95% CI)",
    ),
    Column(
        "j_per_output_token_system",
        "J/token whole system",
        "metric",
        ci=True,
        title="Every component summed, measured and estimated (gross, mean ± 95% CI): shown "
        "beside the ranked measured figure, marked estimate when any component is modelled",
    ),
    Column(
        "pass_at_1",
        "pass@1",
        "metric",
        "pct",
        ci=True,
        title="HumanEval: share of tasks whose completion passed its tests (mean ± 95% CI); "
        "only HumanEval workloads are scored",
    ),
    Column(
        "j_per_solved_task",
        "J/solved task",
        "metric",
        ci=True,
        title="HumanEval: gross energy of the window per solved task (mean ± 95% CI); "
        "undefined when nothing was solved",
    ),
    Column("throughput_out_tok_s", "tok/s", "metric", ci=True, title="Output tokens per second"),
    Column(
        "ttft_p50_s",
        "TTFT p50 (ms)",
        "metric",
        "ms",
        title="Time to first token, median",
        default=False,
    ),
    Column(
        "ttft_p99_s",
        "TTFT p99 (ms)",
        "metric",
        "ms",
        title="Time to first token, p99",
        default=False,
    ),
    Column("itl_p50_s", "ITL p50 (ms)", "metric", "ms", title="Inter-token latency, median"),
    Column(
        "avg_power_w",
        "Power (W)",
        "metric",
        title="Average power over the window (gross)",
        default=False,
    ),
    Column(
        "flops_per_output_token",
        "FLOP/token",
        "metric",
        "si",
        title="Forward FLOPs per token",
        default=False,
    ),
    Column(
        "mfu",
        "MFU",
        "metric",
        "pct",
        title="Model FLOPs utilisation vs the device peak",
        default=False,
    ),
    Column(
        "mbu",
        "MBU",
        "metric",
        "pct",
        title="Memory bandwidth utilisation vs the device peak",
        default=False,
    ),
    Column(
        "cycles",
        "Cycles",
        "int",
        title="Successful runs (failed runs in brackets)",
        default=False,
    ),
    Column("energy_method", "Energy method", default=False),
    Column("warnings", "⚠", title="Measurement and stability warnings (hover the icon)"),
)

FILTERS = tuple(c for c in COLUMNS if c.filter)


@dataclass
class Row:
    """One leaderboard row."""

    exp: Experiment
    model: str
    backend: str
    precision: str
    batch_size: int | None
    workload: str
    variant: str
    hardware: str
    energy_class: str
    energy_method: str
    n_ok: int
    n_failed: int
    warnings: list[str] = field(default_factory=list)
    task: str = ""  # the workload's request shape without its prompt count (groups.task_label)
    params: int | None = None  # model parameters as loaded (provenance), None when unknown
    weights: str = ""  # the weights' real format (weights_label)
    #: What the chart mark's shape shows: the weights' stored format (mark_format).
    mark: str = ""
    rank: int | None = None  # within the group, measured rows only
    rating: int | None = None  # 1-5 stars within the group (groups.stars)
    #: The aggregation's summary row (``<metric>_mean/_std/_n/_ci95_low/_ci95_high`` ...).
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    _stats: dict[str, Stat] = field(default_factory=dict, repr=False)

    @property
    def cycles(self) -> int:
        return self.n_ok

    @property
    def group(self) -> str:
        """Rows are ranked only against rows of the same group: hardware x task."""
        return group_label(self.hardware, self.task)

    def stat(self, metric: str) -> Stat:
        """Summary of ``metric`` (built on first use: a page needs ~30, the leaderboard ~11)."""
        st = self._stats.get(metric)
        if st is None:
            st = self._stats[metric] = stat_of(self.summary, metric)
        return st


def build_rows(collected: Collected) -> list[Row]:
    """Leaderboard rows in display order, measured rows ranked."""
    summary: dict[tuple[str, str], dict[str, Any]] = {}
    if not collected.summary.is_empty():
        for r in collected.summary.iter_rows(named=True):
            summary.setdefault((text(r.get("suite")), text(r.get("experiment_id"))), r)
    rows: list[Row] = []
    for exp in collected.experiments.values():
        s = summary.get(exp.key, {})
        cfg = exp.config
        energy_class = exp.energy_class
        if energy_class == "measured" and s.get("energy_is_estimate"):
            energy_class = "estimate"
        # Measurement warnings of the runs, then the aggregation's stability codes.
        warnings = exp.warning_codes()
        stability = s.get("stability")
        warnings += [str(c) for c in stability] if isinstance(stability, list) else []
        n_ok = len(exp.ok_runs)
        n_failed = len(exp.runs) - n_ok
        if n_failed:
            warnings.append(f"{n_failed} failed run{'s' * (n_failed > 1)}")
        batch = cfg.get("batch_size")
        rows.append(
            Row(
                exp=exp,
                model=text(s.get("model")) or model_label(cfg.get("model")),
                backend=text(s.get("backend")) or text(cfg.get("backend"), "?"),
                precision=text(s.get("precision")) or text(cfg.get("precision"), "?"),
                batch_size=batch
                if isinstance(batch, int) and not isinstance(batch, bool)
                else None,
                workload=text(s.get("workload")) or workload_label(cfg.get("workload")),
                variant=text(s.get("variant"))
                if s.get("variant") is not None
                else variant_label(cfg if isinstance(cfg, dict) else {}),
                hardware=text(s.get("hardware")) or "?",
                energy_class=energy_class,
                energy_method=text(s.get("energy_method")) or "+".join(exp.methods),
                summary=s,
                n_ok=n_ok,
                n_failed=n_failed,
                warnings=warnings,
                task=task_label(cfg.get("workload")),
                params=params_of(exp),
                weights=weights_label(exp),
                mark=mark_format(exp),
            )
        )
    return order_and_rank(rows)


def _model_block(exp: Experiment) -> dict[str, Any]:
    model = exp.provenance.get("model") if isinstance(exp.provenance, dict) else None
    return model if isinstance(model, dict) else {}


def params_of(exp: Experiment) -> int | None:
    """The model's parameter count as the harness loaded it (provenance.model.params)."""
    v = number(_model_block(exp).get("params"))
    return int(v) if v is not None and v > 0 else None


_GGUF_TYPE = re.compile(r"[.-]((?:I?Q\d[A-Z0-9_]*)|BF16|F16|F32)\.gguf$", re.IGNORECASE)


def weights_label(exp: Experiment) -> str:
    """The weights' real format, e.g. ``GGUF Q4_1 -> float32`` (a quantised file dequantised at
    load), ``random (dummy)``, or the dtype the model ran in; '' when nothing says."""
    cfg = exp.config if isinstance(exp.config, dict) else {}
    model = _model_block(exp)
    if cfg.get("weights") == "dummy" or model.get("weights") == "dummy":
        return "random (dummy)"
    dtype = text(model.get("dtype"))
    gguf = _gguf_type(exp)
    if gguf is not None:
        kind = gguf.upper() or "?"
        if cfg.get("backend") == "llamacpp" or not dtype:
            return f"GGUF {kind}"
        return f"GGUF {kind} -> {dtype}"
    return dtype


def _gguf_type(exp: Experiment) -> str | None:
    """The tensor type in the name of the GGUF file the weights came from ('' when the name does
    not say); None when they came from no GGUF file."""
    model = _model_block(exp)
    file = text(model.get("file") or model.get("gguf_file"))
    if not file.lower().endswith(".gguf"):
        return None
    m = _GGUF_TYPE.search(file.replace("\\", "/").rsplit("/", 1)[-1])
    return m.group(1).lower() if m else ""


def mark_format(exp: Experiment) -> str:
    """The format a chart mark's shape stands for (``marks.precision_shape``): the GGUF file's
    tensor type (``gguf:q4_1``), else the engine's quantisation option (``awq``, ``bnb_nf4``, ...),
    else the precision. A quantised model computes in its precision but reads its stored weights,
    so shaping it as its 16-bit precision put a 4-bit model among the 16-bit ones."""
    cfg = exp.config if isinstance(exp.config, dict) else {}
    gguf = _gguf_type(exp)
    if gguf:
        return f"gguf:{gguf}"
    backend = text(cfg.get("backend"))
    options = cfg.get(option_block(backend)) if backend else None
    method = options.get("quantization") if isinstance(options, dict) else None
    if isinstance(method, str) and method and method != "gguf":
        return method
    return text(cfg.get("precision"))


def order_and_rank(rows: list[Row]) -> list[Row]:
    """Sections in order (measured, estimate, none); within one, by J/token then throughput.
    Measured rows are ranked and rated within their group only (``groups.rank_within_groups``)."""

    def key(row: Row) -> tuple[Any, ...]:
        j = row.stat("j_per_output_token").mean
        tput = row.stat("throughput_out_tok_s").mean
        section = [s for s, _, _ in SECTIONS].index(row.energy_class)
        return (section, j is None, j or 0.0, -(tput or 0.0), row.model, row.exp.experiment_id)

    rows = sorted(rows, key=key)
    rank_within_groups(rows)
    return rows


def table_frame(collected: Collected, rows: list[Row]) -> pl.DataFrame:
    """The aggregated table for downloads: the aggregation's summary, unchanged (mean, std, n and
    95% interval of every metric), in leaderboard order, plus the report's columns: energy class,
    rank, experiment page and the warnings shown on the leaderboard."""
    report = pl.DataFrame(
        {
            "suite": [r.exp.suite for r in rows],
            "experiment_id": [r.exp.experiment_id for r in rows],
            "energy_class": [r.energy_class for r in rows],
            "group": [r.group for r in rows],
            "rank": pl.Series([r.rank for r in rows], dtype=pl.Int64),
            "rating": pl.Series([r.rating for r in rows], dtype=pl.Int64),
            "params": pl.Series([r.params for r in rows], dtype=pl.Int64),
            "weights": [r.weights for r in rows],
            "page": pl.Series([r.exp.page or None for r in rows], dtype=pl.String),
            "report_warnings": pl.Series([r.warnings for r in rows], dtype=pl.List(pl.String)),
            "_order": pl.Series(range(len(rows)), dtype=pl.Int64),
        }
    )
    summary = collected.summary
    if summary.is_empty():
        return report.drop("_order")
    keys = ["suite", "experiment_id"]
    report = report.with_columns(pl.col(k).cast(summary.schema[k]) for k in keys)
    joined = summary.join(report, on=keys, how="left")
    return joined.sort("_order", nulls_last=True, maintain_order=True).drop("_order")
