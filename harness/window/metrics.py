"""Metrics of one measured window, computed from real token timestamps and meter readings.

What each metric means is defined once, in ``harness.contract.definitions.METRIC_DEFINITIONS``.
"""

from __future__ import annotations

from typing import Any

from harness.backends.base import FlopsEstimate, Generation
from harness.window.stats import summarize


def _div(a: float | None, b: float) -> float | None:
    return None if a is None or b <= 0 else a / b


def request_timings(generations: list[tuple[int, Generation]], t0: float) -> list[dict[str, Any]]:
    """Per-request timing rows (times relative to the window start ``t0``)."""
    rows = []
    for index, (batch, g) in enumerate(generations):
        first = g.t_first_token
        rows.append(
            {
                "index": index,
                "batch": batch,
                "tokens_in": g.tokens_in,
                "tokens_out": g.tokens_out,
                "t_start_s": g.t_start - t0,
                # When the engine itself says it scheduled the request (None: it does not say).
                "t_scheduled_s": None if g.t_scheduled is None else g.t_scheduled - t0,
                "t_first_token_s": None if first is None else first - t0,
                "t_end_s": g.t_end - t0,
            }
        )
        if g.engine_stats is not None:
            rows[-1]["engine_stats"] = g.engine_stats
    return rows


def compute_metrics(
    generations: list[tuple[int, Generation]],
    duration_s: float,
    energy: dict[str, Any],
    flops: FlopsEstimate,
    co2_g: float | None,
) -> dict[str, Any]:
    """Metrics of one window. ``generations`` pairs each request with its batch index; ``energy`` is
    ``harness.meters.chain.combine``'s output."""
    gens = [g for _, g in generations]
    n = len(gens)
    tokens_out = sum(g.tokens_out for g in gens)
    ttft = [g.t_first_token - g.t_start for g in gens if g.t_first_token is not None]
    itl = [b - a for g in gens for a, b in zip(g.token_times, g.token_times[1:], strict=False)]
    e2e = [g.t_end - g.t_start for g in gens]
    total = energy.get("energy_total_j")
    return {
        "num_requests": n,
        "tokens_in": sum(g.tokens_in for g in gens),
        "tokens_out": tokens_out,
        "duration_s": duration_s,
        "throughput_out_tok_s": tokens_out / duration_s,
        "requests_per_s": n / duration_s,
        "ttft_s": summarize(ttft),
        "itl_s": summarize(itl),
        "e2e_latency_s": summarize(e2e),
        "energy_total_j": total,
        "energy_cpu_j": energy.get("energy_cpu_j"),
        "energy_gpu_j": energy.get("energy_gpu_j"),
        "energy_dram_j": energy.get("energy_dram_j"),
        "avg_power_w": _div(total, duration_s),
        "j_per_output_token": _div(total, tokens_out),
        "j_per_request": _div(total, n),
        "flops_per_output_token": flops.per_token,
        "co2_g": co2_g,
    }
