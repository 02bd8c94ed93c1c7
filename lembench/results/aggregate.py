"""Late aggregation of stored runs with polars: raw runs -> one row per experiment.

Raw per-run rows keep everything (cycles, per-run methods, environments); summaries are computed
from them on demand, never stored in place of them. A summary row carries, for every metric, its
mean, sample std, n (non-null successful runs) and 95% Student-t interval, plus stability warnings.

Runs of one experiment measured in different environments (GPUs, driver, CPU, software versions;
see ``lembench.results.environment``) are not merged silently: ``summarise`` refuses them unless
asked to merge (``allow_mixed``) or to keep them apart (``by_environment``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import polars as pl

from lembench.errors import UserError
from lembench.results.convergence import run_policy_columns, with_convergence
from lembench.results.environment import (
    ENV_FIELDS,
    environment_fields,
    hardware_label,
    key_of,
)
from lembench.results.scope import RANKED, energy_scope_of
from lembench.results.stats import t_critical
from lembench.results.summary import stat_of

if TYPE_CHECKING:  # the store imports this package (migration): no import cycle at run time
    from lembench.store import StoredRun

#: Experiment identity: the columns a summary row is keyed by.
IDENTITY = (
    "suite",
    "experiment_id",
    "backend",
    "model",
    "precision",
    "batch_size",
    "workload",
    "variant",
)

#: Per-run numbers summarised per experiment as ``<m>_mean``, ``_std``, ``_n``, ``_ci95_low``,
#: ``_ci95_high`` (over successful runs where the metric is not null).
METRICS = (
    "j_per_output_token",
    "j_per_output_token_net",
    "j_per_output_token_system",
    "j_per_output_token_system_net",
    "j_per_request_system",
    "energy_measured_j",
    "energy_estimated_j",
    "j_per_request",
    "j_per_input_token_prefill",
    "j_per_output_token_decode",
    "energy_total_j",
    "energy_net_j",
    "energy_gpu_j",
    "energy_cpu_j",
    "energy_dram_j",
    "energy_prefill_j",
    "energy_decode_j",
    "energy_idle_j",
    "idle_power_w",
    "avg_power_w",
    "throughput_out_tok_s",
    "requests_per_s",
    "duration_s",
    "tokens_in",
    "tokens_out",
    "ttft_p50_s",
    "ttft_p99_s",
    "itl_p50_s",
    "itl_p99_s",
    "e2e_p50_s",
    "e2e_p99_s",
    "flops_per_output_token",
    "mfu",
    "mbu",
    "co2_g",
    "pass_at_1",
    "j_per_solved_task",
    "j_per_solved_task_net",
    "j_per_request_p50",
    "j_per_request_p90",
    "j_per_request_p99",
    "goodput_fraction",
    "j_per_good_output_token",
    "j_per_output_token_steady_state",
)

#: Metrics whose spread flags an experiment ``high_variance``.
VARIANCE_METRICS = ("j_per_output_token", "throughput_out_tok_s")

#: Default coefficient-of-variation threshold (the suite's measurement.cv_threshold default).
DEFAULT_CV_THRESHOLD = 0.10

#: Fewer successful runs than this flags an experiment ``too_few_cycles``.
MIN_CYCLES = 3

#: Stability warning codes of a summary row.
HIGH_VARIANCE = "high_variance"
TOO_FEW_CYCLES = "too_few_cycles"
MIXED_ENVIRONMENT = "mixed_environment"

#: Metrics that are whole numbers in a run (kept as integers in the runs frame).
_INT_METRICS = frozenset({"tokens_in", "tokens_out"})

#: Where each summarised metric comes from: (key in result.metrics, percentile key or None).
_SOURCES: dict[str, tuple[str, str | None]] = {
    **{m: (m, None) for m in METRICS if m not in RANKED},
    "j_per_output_token_system": ("j_per_output_token", None),
    "j_per_output_token_system_net": ("j_per_output_token_net", None),
    "j_per_request_system": ("j_per_request", None),
    "ttft_p50_s": ("ttft_s", "p50"),
    "ttft_p99_s": ("ttft_s", "p99"),
    "itl_p50_s": ("itl_s", "p50"),
    "itl_p99_s": ("itl_s", "p99"),
    "e2e_p50_s": ("e2e_latency_s", "p50"),
    "e2e_p99_s": ("e2e_latency_s", "p99"),
    # Per-request energy attributed by share of work (harness.window.workshare).
    "j_per_request_p50": ("j_per_request_attributed", "p50"),
    "j_per_request_p90": ("j_per_request_attributed", "p90"),
    "j_per_request_p99": ("j_per_request_attributed", "p99"),
}

#: Column types of the runs frame (explicit: a metric null in every run, as v2 metrics are in v1
#: results, must still be a float column, and building from a schema is faster than inference).
RUN_SCHEMA: dict[str, Any] = {
    "suite": pl.String,
    "experiment_id": pl.String,
    "run_id": pl.String,
    "invocation_id": pl.String,
    "cycle": pl.Int64,
    "status": pl.String,
    "error": pl.String,
    "backend": pl.String,
    "model": pl.String,
    "precision": pl.String,
    "batch_size": pl.Int64,
    "workload": pl.String,
    "variant": pl.String,
    "device": pl.String,
    "hardware": pl.String,
    "environment_key": pl.String,
    **{f"env_{f}": pl.String for f in ENV_FIELDS},
    "energy_scope": pl.String,
    "energy_method": pl.String,
    "energy_is_estimate": pl.Boolean,
    "system_method": pl.String,
    "system_is_estimate": pl.Boolean,
    "phases_method": pl.String,
    "flops_method": pl.String,
    **{m: pl.Int64 if m in _INT_METRICS else pl.Float64 for m in METRICS},
    "cv_threshold": pl.Float64,
    "conv_min": pl.Int64,
    "conv_max": pl.Int64,
    "conv_ci": pl.Float64,
    "warnings": pl.Int64,
    "warning_codes": pl.List(pl.String),
    "started_at": pl.String,
}


class MixedEnvironmentError(UserError):
    """Runs of one experiment were measured in different environments (one line for the user)."""

    def __init__(self, message: str, experiment_id: str, fields: list[str]) -> None:
        super().__init__(message)
        self.experiment_id = experiment_id
        self.fields = fields


def model_label(model: Any) -> str:
    """Short display form of a model reference (string or object); tolerant of odd input, as the
    report reads result files it did not validate itself."""
    if isinstance(model, dict):
        for key in ("alias", "hf", "path", "ref"):
            if model.get(key):
                return str(model[key])
        return "?"
    return "?" if model is None else str(model)


def workload_label(workload: Any) -> str:
    """Short display form of a workload, e.g. ``synthetic 32->32 x8``; tolerant like model_label."""
    if not isinstance(workload, dict):
        return "?" if workload is None else str(workload)
    kind = workload.get("kind")
    kind = "?" if kind is None else str(kind)
    out = workload.get("output_tokens", "?")
    if kind == "synthetic":
        return (
            f"synthetic {workload.get('input_tokens', '?')}->{out} x{workload.get('num_prompts')}"
        )
    return f"{kind} ->{out} x{workload.get('num_prompts') or 'all'}"


def variant_label(config: dict[str, Any]) -> str:
    """What else sets this experiment apart, briefly: engine options, dummy weights, decoding,
    batching and traffic (e.g. ``quantization=bnb_nf4 double_quant; dummy weights; poisson 2
    qps``); '' for a plain experiment. Engine options are shown as given (null ones left out)."""
    from harness.contract.registry import option_block

    parts = []
    options = config.get(option_block(str(config.get("backend"))))
    if isinstance(options, dict):
        shown = [
            k if v is True else f"{k}={v}"
            for k, v in sorted(options.items())
            if v is not None and v is not False and not isinstance(v, dict)
        ]
        if shown:
            parts.append(" ".join(shown))
    if config.get("weights") == "dummy":
        parts.append("dummy weights")
    decoding = config.get("decoding") if isinstance(config.get("decoding"), dict) else {}
    if decoding.get("preset", "deterministic") != "deterministic" or len(decoding) > 2:
        parts.append(f"decoding {decoding.get('preset', 'deterministic')}")
    batching = config.get("batching") if isinstance(config.get("batching"), dict) else {}
    if batching.get("strategy", "static") != "static":
        budget = f" {batching['max_tokens']} tok" if batching.get("max_tokens") else ""
        parts.append(f"{batching.get('strategy')}{budget}")
    traffic = config.get("traffic") if isinstance(config.get("traffic"), dict) else {}
    if traffic:
        if traffic.get("pattern") == "concurrency":
            rate = f"{traffic.get('concurrency')} in flight"
        else:
            rate = f"{traffic.get('qps')} qps"
        parts.append(f"{traffic.get('pattern')} {rate}")
    return "; ".join(parts)


def run_row(run: StoredRun) -> dict[str, Any]:
    """One flat row of a stored run (ok or failed; v1 or v2: absent metrics are None).

    The ranked figures (``RANKED``: ``j_per_output_token`` and its net) are the measured part of
    the energy when any component was measured (``energy_scope`` "measured": a mixed NVML +
    codecarbon run is ranked on its GPU energy, and ``energy_method``/``energy_is_estimate``
    describe that part); only a run with nothing measured is ranked on its estimate. The
    whole-system figures (measured + estimated) are ``j_per_output_token_system`` (and _net) and
    ``j_per_request_system`` with ``system_method``/``system_is_estimate``; every other energy
    metric is whole-system.
    """
    r = run.result
    cfg = r["config"]
    energy = r.get("energy") or {}
    ranked, m = energy_scope_of(energy, r.get("metrics") or {})
    measured = ranked == "measured"
    scope = energy.get("scope") if isinstance(energy.get("scope"), dict) else {}
    flops = r.get("flops") or {}
    provenance = r.get("provenance") or {}
    requested = (provenance.get("measurement") or {}).get("requested") or {}
    env = environment_fields(r)
    warnings = r.get("warnings") or []

    row: dict[str, Any] = {
        "suite": r["suite"],
        "experiment_id": r["experiment_id"],
        "run_id": r["run_id"],
        "invocation_id": r.get("invocation_id"),
        "cycle": r["cycle"],
        "status": r["status"],
        "error": (r.get("error") or {}).get("reason"),
        "backend": cfg["backend"],
        "model": model_label(cfg["model"]),
        "precision": cfg["precision"],
        "batch_size": cfg["batch_size"],
        "workload": workload_label(cfg["workload"]),
        "variant": variant_label(cfg),
        "device": (provenance.get("model") or {}).get("device"),
        "hardware": hardware_label(r),
        "environment_key": key_of(env),
        **{f"env_{f}": (env or {}).get(f) for f in ENV_FIELDS},
        "energy_scope": ranked,
        "energy_method": (scope.get("measured_method") if measured else None)
        or energy.get("method"),
        "energy_is_estimate": False if measured else energy.get("is_estimate"),
        "system_method": energy.get("method"),
        "system_is_estimate": energy.get("is_estimate"),
        "phases_method": (energy.get("phases") or {}).get("method"),
        "flops_method": flops.get("method"),
        "cv_threshold": requested.get("cv_threshold"),
        **run_policy_columns(r),
        "warnings": len(warnings),
        "warning_codes": sorted({w["code"] for w in warnings}),
        "started_at": r["started_at"],
    }
    for name, (key, pct) in _SOURCES.items():
        value = m.get(key)
        row[name] = (value or {}).get(pct) if pct else value
    for name, (measured_key, system_key) in RANKED.items():
        row[name] = m.get(measured_key) if measured else m.get(system_key)
    return row


def runs_frame(runs: Iterable[StoredRun]) -> pl.DataFrame:
    """All runs as a polars DataFrame, one row per run (columns: ``RUN_SCHEMA``)."""
    return pl.from_dicts([run_row(r) for r in runs], schema=RUN_SCHEMA)


def _t_column(n_col: str, mapping: dict[int, float]) -> pl.Expr:
    """t(n-1) for the run count in ``n_col`` (null for n < 2)."""
    return pl.col(n_col).replace_strict(
        list(mapping), list(mapping.values()), default=None, return_dtype=pl.Float64
    )


def _mixed_message(
    frame: pl.DataFrame, summary: pl.DataFrame, keys: list[str]
) -> tuple[str, str, list[str]]:
    """The one-line refusal for the first experiment mixing environments, and its fields."""
    mixed = summary.filter(pl.col("n_environments") > 1)
    first = mixed.row(0, named=True)
    runs = frame.filter(
        (pl.col("status") == "ok")
        & pl.col("environment_key").is_not_null()
        & pl.all_horizontal([pl.col(k) == first[k] for k in keys])
    )
    differing = []
    for f in ENV_FIELDS:
        values = runs[f"env_{f}"].unique(maintain_order=True).to_list()
        if len(values) > 1:
            shown = " vs ".join(_short(v) for v in values[:4]) + (" vs ..." * (len(values) > 4))
            differing.append((f, f"{f} {shown}"))
    more = mixed.height - 1
    message = (
        f"experiment {first['experiment_id']} (suite {first['suite']}) has runs from "
        f"{first['n_environments']} different environments ({'; '.join(d for _, d in differing)})"
        + (f", as do {more} more experiment{'s' * (more != 1)}" if more else "")
        + "; pass --allow-mixed to merge anyway"
    )
    return message, first["experiment_id"], [f for f, _ in differing]


def _short(value: str | None, limit: int = 40) -> str:
    if value is None:
        return "none"
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _fill_failed_environment(frame: pl.DataFrame) -> pl.DataFrame:
    """Failed runs recorded no environment; give them their experiment's environment key when the
    experiment has exactly one, so they count as failures of that environment's group."""
    exp = ["suite", "experiment_id"]
    known = pl.col("environment_key").drop_nulls()
    only = pl.when(known.n_unique().over(exp) == 1).then(known.first().over(exp))
    return frame.with_columns(pl.col("environment_key").fill_null(only))


def summarise(
    frame: pl.DataFrame,
    *,
    allow_mixed: bool = False,
    by_environment: bool = False,
    cv_threshold: float | None = None,
) -> pl.DataFrame:
    """One row per experiment (and per environment with ``by_environment``) from ``runs_frame``.

    Columns: the identity (``IDENTITY``), ``environment_key`` (keys joined with '|' when merged),
    ``n_environments``, ``hardware``, ``device``, ``n_ok``, ``n_failed``, ``errors``,
    ``energy_scope`` (``measured``: the ranked figures are the measured part; ``estimate``;
    ``none``), ``energy_method`` and ``energy_is_estimate`` of the ranked figures and
    ``system_method``/``system_is_estimate`` of the whole-system ones (so estimates stay
    labelled; see ``run_row``), ``phases_method``,
    ``flops_method``, ``flops_per_output_token`` (mean), ``warning_codes`` (measurement warnings
    of the runs), ``stability`` (list of ``high_variance``, ``too_few_cycles``,
    ``mixed_environment``), and for every metric of ``METRICS``: ``<m>_mean``, ``<m>_std``,
    ``<m>_n``, ``<m>_ci95_low``, ``<m>_ci95_high`` over successful runs (n counts non-null values;
    std and the interval are null below two).

    ``cv_threshold``: std >= threshold x mean of j_per_output_token or throughput flags
    ``high_variance``; None uses the suite's recorded measurement.cv_threshold, else 0.10.
    Raises MixedEnvironmentError when an experiment's successful runs come from more than one
    environment, unless ``allow_mixed`` (merged, flagged ``mixed_environment``) or
    ``by_environment`` (one row per environment).
    """
    if not frame.columns:
        return frame
    keys = list(IDENTITY) + (["environment_key"] if by_environment else [])
    if by_environment:
        frame = _fill_failed_environment(frame)
    ok = pl.col("status") == "ok"
    # Failed runs carry no numbers worth averaging: null them once instead of filtering per metric.
    prepared = frame.with_columns(
        [pl.when(ok).then(pl.col(m).cast(pl.Float64)).alias(m) for m in METRICS]
        + [pl.when(ok).then(pl.col("environment_key")).alias("_ok_env")]
    )

    def joined(name: str, sep: str = "|", only_ok: bool = True) -> pl.Expr:
        """Distinct values joined; null rather than '' when there are none."""
        col = pl.col(name).filter(ok) if only_ok else pl.col(name)
        text = col.drop_nulls().unique().sort().str.join(sep)
        return pl.when(text.str.len_chars() > 0).then(text)

    # With by_environment the key is a group column; otherwise the keys seen, joined.
    aggs: list[pl.Expr] = (
        [] if by_environment else [joined("_ok_env", only_ok=False).alias("environment_key")]
    )
    aggs += [
        pl.col("_ok_env").drop_nulls().n_unique().cast(pl.Int64).alias("n_environments"),
        joined("hardware", " | ", only_ok=False).alias("hardware"),
        pl.col("device").drop_nulls().first().alias("device"),
        ok.sum().cast(pl.Int64).alias("n_ok"),
        (~ok).sum().cast(pl.Int64).alias("n_failed"),
        joined("error", only_ok=False).alias("errors"),
        joined("energy_scope").alias("energy_scope"),
        joined("energy_method").alias("energy_method"),
        pl.when(ok.any())
        .then(pl.col("energy_is_estimate").filter(ok).any())
        .alias("energy_is_estimate"),
        joined("system_method").alias("system_method"),
        pl.when(ok.any())
        .then(pl.col("system_is_estimate").filter(ok).any())
        .alias("system_is_estimate"),
        joined("phases_method").alias("phases_method"),
        joined("flops_method").alias("flops_method"),
        pl.col("warning_codes").explode().drop_nulls().unique().sort().alias("warning_codes"),
        pl.col("cv_threshold").drop_nulls().first().alias("_cv_threshold"),
        pl.col("conv_min").drop_nulls().last().alias("_conv_min"),
        pl.col("conv_max").drop_nulls().last().alias("_conv_max"),
        pl.col("conv_ci").drop_nulls().last().alias("_conv_ci"),
    ]
    for m in METRICS:
        col = pl.col(m)
        aggs += [
            col.mean().alias(f"{m}_mean"),
            col.std().alias(f"{m}_std"),
            col.count().cast(pl.Int64).alias(f"{m}_n"),
        ]
    summary = prepared.group_by(keys, maintain_order=True).agg(aggs)

    if not allow_mixed and not by_environment and (summary["n_environments"] > 1).any():
        message, experiment_id, fields = _mixed_message(frame, summary, list(IDENTITY))
        raise MixedEnvironmentError(message, experiment_id, fields)

    # One t value per distinct run count (a handful), mapped onto the columns by polars.
    counts = {n for m in METRICS for n in summary[f"{m}_n"].unique().to_list() if n and n >= 2}
    t_of_n = {n: t_critical(n - 1) for n in sorted(counts)}
    intervals = []
    for m in METRICS:
        half = _t_column(f"{m}_n", t_of_n) * pl.col(f"{m}_std") / pl.col(f"{m}_n").sqrt()
        intervals += [
            (pl.col(f"{m}_mean") - half).alias(f"{m}_ci95_low"),
            (pl.col(f"{m}_mean") + half).alias(f"{m}_ci95_high"),
        ]
    summary = with_convergence(summary.with_columns(intervals))

    threshold = (
        pl.lit(cv_threshold, dtype=pl.Float64)
        if cv_threshold is not None
        else pl.col("_cv_threshold").fill_null(DEFAULT_CV_THRESHOLD)
    )
    unstable = pl.any_horizontal(
        [
            (pl.col(f"{m}_std") > 0) & (pl.col(f"{m}_std") >= threshold * pl.col(f"{m}_mean").abs())
            for m in VARIANCE_METRICS
        ]
    ).fill_null(False)
    codes = [
        pl.when(unstable).then(pl.lit(HIGH_VARIANCE)),
        pl.when(pl.col("n_ok") < MIN_CYCLES).then(pl.lit(TOO_FEW_CYCLES)),
        pl.when(pl.col("n_environments") > 1).then(pl.lit(MIXED_ENVIRONMENT)),
    ]
    summary = summary.with_columns(
        pl.concat_list(codes).list.drop_nulls().alias("stability"),
        pl.col("flops_per_output_token_mean").alias("flops_per_output_token"),
    ).drop("_cv_threshold")

    head = [
        *keys,
        *([] if by_environment else ["environment_key"]),
        "n_environments",
        "hardware",
        "device",
        "n_ok",
        "n_failed",
        "errors",
        "energy_scope",
        "energy_method",
        "energy_is_estimate",
        "system_method",
        "system_is_estimate",
        "phases_method",
        "flops_method",
        "flops_per_output_token",
        "stability",
        "warning_codes",
        "convergence",
        "convergence_metric",
        "convergence_ci_pct",
    ]
    per_metric = [
        f"{m}_{s}" for m in METRICS for s in ("mean", "std", "n", "ci95_low", "ci95_high")
    ]
    return summary.select(head + per_metric)


def ci_half_width(row: dict[str, Any], metric: str) -> float | None:
    """Half the 95% interval of ``metric`` in a summary row (None below two runs)."""
    return stat_of(row, metric).half_width
