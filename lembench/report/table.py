"""The leaderboard: one row per experiment, its columns, ranks and the exported table.

Measured and estimated energy are never ranked together: measured rows get rank numbers 1..k by
gross J/output token (the figure every measured row has; net needs an idle baseline), rows whose
energy is wholly modelled are listed in their own section without a rank, and rows without an
energy figure (failed, or no meter) come last. A row with a measured component is ranked on the
measured part alone (an NVML GPU beside a codecarbon CPU/DRAM estimate: the GPU energy), its
whole-system figure (measured + estimated) shown beside it, marked estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from lembench.report.data import Collected, Experiment, text
from lembench.results.aggregate import model_label, variant_label, workload_label
from lembench.results.summary import Stat, stat_of

SECTIONS = (
    ("measured", "Measured energy", "Ranked by mean gross J per output token."),
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


COLUMNS: tuple[Column, ...] = (
    Column("rank", "#", "int", title="Rank among measured rows (estimates are not ranked)"),
    Column("model", "Model", filter=True),
    Column("backend", "Backend", filter=True),
    Column("precision", "Precision", filter=True),
    Column("batch_size", "Batch", "int"),
    Column("workload", "Workload"),
    Column("variant", "Variant", filter=True, title="Engine options, weights, decoding, traffic"),
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
    Column("ttft_p50_s", "TTFT p50 (ms)", "metric", "ms", title="Time to first token, median"),
    Column("ttft_p99_s", "TTFT p99 (ms)", "metric", "ms", title="Time to first token, p99"),
    Column("itl_p50_s", "ITL p50 (ms)", "metric", "ms", title="Inter-token latency, median"),
    Column("avg_power_w", "Power (W)", "metric", title="Average power over the window (gross)"),
    Column("flops_per_output_token", "FLOP/token", "metric", "si", title="Forward FLOPs per token"),
    Column("mfu", "MFU", "metric", "pct", title="Model FLOPs utilisation vs the device peak"),
    Column("mbu", "MBU", "metric", "pct", title="Memory bandwidth utilisation vs the device peak"),
    Column("cycles", "Cycles", "int", title="Successful runs (failed runs in brackets)"),
    Column("energy_method", "Energy method"),
    Column("warnings", "Warnings"),
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
    rank: int | None = None
    #: The aggregation's summary row (``<metric>_mean/_std/_n/_ci95_low/_ci95_high`` ...).
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    _stats: dict[str, Stat] = field(default_factory=dict, repr=False)

    @property
    def cycles(self) -> int:
        return self.n_ok

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
            )
        )
    return order_and_rank(rows)


def order_and_rank(rows: list[Row]) -> list[Row]:
    """Sections in order (measured, estimate, none); within one, by J/token then throughput."""

    def key(row: Row) -> tuple[Any, ...]:
        j = row.stat("j_per_output_token").mean
        tput = row.stat("throughput_out_tok_s").mean
        section = [s for s, _, _ in SECTIONS].index(row.energy_class)
        return (section, j is None, j or 0.0, -(tput or 0.0), row.model, row.exp.experiment_id)

    rows = sorted(rows, key=key)
    rank = 0
    for row in rows:
        if row.energy_class == "measured":
            rank += 1
            row.rank = rank
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
            "rank": pl.Series([r.rank for r in rows], dtype=pl.Int64),
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
