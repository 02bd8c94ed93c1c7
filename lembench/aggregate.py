"""Late aggregation of stored runs with polars: raw runs -> one row per experiment.

Raw per-run rows keep everything (cycles, per-run methods); summaries are computed from them on
demand, never stored in place of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from lembench.store import StoredRun

#: Per-run numbers summarised per experiment as mean, std and n.
SUMMARISED = (
    "j_per_output_token",
    "throughput_out_tok_s",
    "ttft_p50_s",
    "itl_p50_s",
    "e2e_p50_s",
    "energy_total_j",
    "avg_power_w",
)


def model_label(model: Any) -> str:
    """Short display form of a model reference (string or object)."""
    if isinstance(model, str):
        return model
    return next(str(model[k]) for k in ("alias", "hf", "path") if k in model)


def workload_label(workload: dict[str, Any]) -> str:
    """Short display form of a workload, e.g. ``synthetic 32->32 x8``."""
    kind = workload["kind"]
    if kind == "synthetic":
        w = workload
        return f"synthetic {w['input_tokens']}->{w['output_tokens']} x{w['num_prompts']}"
    return f"{kind} ->{workload['output_tokens']} x{workload.get('num_prompts') or 'all'}"


def run_row(run: StoredRun) -> dict[str, Any]:
    """One flat row of a stored run (ok or failed)."""
    r = run.result
    cfg = r["config"]
    m = r.get("metrics") or {}
    energy = r.get("energy") or {}
    flops = r.get("flops") or {}

    def p50(name: str) -> float | None:
        return (m.get(name) or {}).get("p50")

    return {
        "suite": r["suite"],
        "experiment_id": r["experiment_id"],
        "run_id": r["run_id"],
        "cycle": r["cycle"],
        "status": r["status"],
        "error": (r.get("error") or {}).get("reason"),
        "backend": cfg["backend"],
        "model": model_label(cfg["model"]),
        "precision": cfg["precision"],
        "batch_size": cfg["batch_size"],
        "workload": workload_label(cfg["workload"]),
        "device": (r["provenance"].get("model") or {}).get("device"),
        "energy_method": energy.get("method"),
        "energy_is_estimate": energy.get("is_estimate"),
        "j_per_output_token": m.get("j_per_output_token"),
        "throughput_out_tok_s": m.get("throughput_out_tok_s"),
        "ttft_p50_s": p50("ttft_s"),
        "itl_p50_s": p50("itl_s"),
        "e2e_p50_s": p50("e2e_latency_s"),
        "energy_total_j": m.get("energy_total_j"),
        "avg_power_w": m.get("avg_power_w"),
        "tokens_out": m.get("tokens_out"),
        "flops_per_output_token": m.get("flops_per_output_token"),
        "flops_method": flops.get("method"),
        "warnings": len(r.get("warnings") or []),
        "started_at": r["started_at"],
    }


def runs_frame(runs: Iterable[StoredRun]) -> pl.DataFrame:
    """All runs as a polars DataFrame, one row per run."""
    rows = [run_row(r) for r in runs]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def summarise(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per experiment: mean/std/n of the summarised numbers over successful runs, plus the
    count of failed runs. Energy methods are kept (joined) so estimates stay labelled."""
    if frame.is_empty():
        return frame
    keys = ["suite", "experiment_id", "backend", "model", "precision", "batch_size", "workload"]
    ok = pl.col("status") == "ok"
    aggs: list[pl.Expr] = [
        ok.sum().alias("n_ok"),
        (~ok).sum().alias("n_failed"),
        pl.col("energy_method").filter(ok).unique().sort().str.join("|").alias("energy_method"),
        pl.col("energy_is_estimate").filter(ok).any().alias("energy_is_estimate"),
        pl.col("flops_per_output_token").filter(ok).mean().alias("flops_per_output_token"),
        pl.col("flops_method").filter(ok).unique().sort().str.join("|").alias("flops_method"),
        pl.col("device").drop_nulls().first().alias("device"),
        pl.col("error").drop_nulls().unique().sort().str.join("|").alias("errors"),
    ]
    for name in SUMMARISED:
        col = pl.col(name).filter(ok).cast(pl.Float64)
        aggs += [col.mean().alias(f"{name}_mean"), col.std().alias(f"{name}_std")]
    return frame.group_by(keys, maintain_order=True).agg(aggs)
