"""Stored runs with chosen numbers for the advice tests, written through the real store.

Documents start from ``lembench.report.synthetic.result`` (schema-valid) and get the config and
metrics a test needs; ``ResultStore.store`` validates every one against result.schema.json.
Everything is labelled synthetic (suite names, command), as in ``synthetic``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from lembench.report import synthetic
from lembench.store import ResultStore
from lembench.suite.expand import experiment_id

H100 = "NVIDIA H100 80GB HBM3"


def config(
    model: str = "synthetic/Model-8B",
    backend: str = "pytorch",
    precision: str = "fp16",
    batch_size: int = 1,
    *,
    quantization: str | None = None,
    threshold: float | None = None,
    double_quant: bool | None = None,
    input_tokens: int = 256,
    output_tokens: int = 128,
    num_prompts: int = 16,
) -> dict[str, Any]:
    """An expanded experiment config; engine options only where given."""
    cfg = synthetic.config(model, backend, precision, batch_size, output_tokens)
    cfg["workload"]["input_tokens"] = input_tokens
    cfg["workload"]["num_prompts"] = num_prompts
    options: dict[str, Any] = {}
    if quantization is not None:
        options["quantization"] = quantization
    if threshold is not None:
        options["llm_int8_threshold"] = threshold
    if double_quant is not None:
        options["double_quant"] = double_quant
    if options:
        cfg["pytorch" if backend == "pytorch" else backend] = options
    return cfg


def _latency(p99: float) -> dict[str, Any]:
    return {
        "n": 16,
        "mean": p99 * 0.7,
        "p50": p99 * 0.6,
        "p90": p99 * 0.9,
        "p99": p99,
        "min": p99 * 0.3,
        "max": p99,
    }


def add(
    root: Path,
    cfg: dict[str, Any],
    *,
    j: float,
    tput: float = 100.0,
    power: float | None = None,
    ttft: float = 0.5,
    itl: float = 0.05,
    e2e: float = 5.0,
    spread: tuple[float, ...] = (0.99, 1.0, 1.01),
    suite: str = "synthetic-advice",
    hardware: str | None = H100,
    estimate: bool = False,
    params: int | None = 8_030_000_000,
    co2_intensity: float | None = None,
) -> str:
    """Store one experiment: one run per factor of ``spread`` (J/token and throughput scaled by
    it); returns the experiment id. ``power`` defaults to J/token x tok/s."""
    store = ResultStore(root)
    out_tokens = cfg["workload"]["output_tokens"]
    n_prompts = cfg["workload"]["num_prompts"]
    for cycle, factor in enumerate(spread, 1):
        doc, _ = synthetic.result(
            copy.deepcopy(cfg),
            suite=suite,
            cycle=cycle,
            cycles=len(spread),
            hardware=hardware,
            estimate=estimate,
            timeline=False,
        )
        jt = j * factor
        rate = tput / factor
        m = doc["metrics"]
        m.update(
            j_per_output_token=jt,
            j_per_output_token_net=jt * 0.8,
            j_per_request=jt * out_tokens,
            energy_total_j=jt * out_tokens * n_prompts,
            throughput_out_tok_s=rate,
            avg_power_w=power if power is not None else jt * rate,
            ttft_s=_latency(ttft),
            itl_s=_latency(itl),
            e2e_latency_s=_latency(e2e),
            co2_g=None,
        )
        if params is None:
            doc["flops"]["params"] = None
            doc["provenance"]["model"].pop("params", None)
        else:
            doc["flops"]["params"] = params
            doc["provenance"]["model"]["params"] = params
        if co2_intensity is not None:
            doc["energy"]["co2"] = {
                "method": "codecarbon_offline_grid_intensity",
                "country_iso_code": "DEU",
                "region": None,
                "carbon_intensity_g_per_kwh": co2_intensity,
                "level": "country",
            }
        store.store(doc)
    return experiment_id(cfg)
