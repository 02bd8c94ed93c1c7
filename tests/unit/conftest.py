"""Shared builders for unit tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness.window.stats import summarize

CONFIG: dict[str, Any] = {
    "backend": "pytorch",
    "model": "smollm2-135m",
    "precision": "fp32",
    "device": "auto",
    "batch_size": 1,
    "warmup": {"runs": 1},
    "workload": {
        "kind": "synthetic",
        "num_prompts": 2,
        "input_tokens": 4,
        "output_tokens": 3,
        "exact_output": True,
        "seed": 0,
    },
    "pytorch": {"threads": None, "attn_implementation": None},
}


def make_result(status: str = "ok", **overrides: Any) -> dict[str, Any]:
    """A valid result document (result.schema.json v1)."""
    result: dict[str, Any] = {
        "schema_version": 5,
        "status": status,
        "suite": "unit",
        "experiment_id": "0123456789ab",
        "run_id": "20261121T000000Z-abcdef-c1",
        "invocation_id": "20261121T000000Z-abcdef",
        "load_group": "ba9876543210",
        "cycle": 1,
        "cycles": 1,
        "config": copy.deepcopy(CONFIG),
        "started_at": "2026-11-21T00:00:00+00:00",
        "ended_at": "2026-11-21T00:00:05+00:00",
        "warnings": [],
        "timeline": None,
        "provenance": {
            "harness_version": "0.1.0",
            "request_sha256": "0" * 64,
            "controller": {"lembench_version": "0.1.0", "runtime": "local"},
        },
    }
    if status == "ok":
        result.update(
            metrics={
                "num_requests": 2,
                "tokens_in": 8,
                "tokens_out": 6,
                "duration_s": 1.5,
                "throughput_out_tok_s": 4.0,
                "requests_per_s": 1.333,
                "ttft_s": summarize([0.1, 0.2]),
                "itl_s": summarize([0.05] * 4),
                "e2e_latency_s": summarize([0.2, 0.3]),
                "energy_total_j": 30.0,
                "energy_cpu_j": 25.0,
                "energy_gpu_j": None,
                "energy_dram_j": 5.0,
                "avg_power_w": 20.0,
                "j_per_output_token": 5.0,
                "j_per_request": 15.0,
                "flops_per_output_token": 2.7e8,
                "co2_g": 0.003,
                "idle_power_w": 10.0,
                "energy_net_j": 15.0,
                "j_per_output_token_net": 2.5,
                "energy_prefill_j": 5.0,
                "energy_decode_j": 9.0,
                "energy_idle_j": 15.0,
                "j_per_input_token_prefill": 0.625,
                "j_per_output_token_decode": 1.5,
                "mfu": None,
                "mbu": None,
            },
            energy={
                "method": "estimate_codecarbon",
                "is_estimate": True,
                "components": [
                    {
                        "meter": "codecarbon",
                        "method": "estimate_codecarbon",
                        "domain": "cpu",
                        "is_estimate": True,
                        "energy_j": 25.0,
                    },
                    {
                        "meter": "codecarbon",
                        "method": "estimate_codecarbon",
                        "domain": "dram",
                        "is_estimate": True,
                        "energy_j": 5.0,
                    },
                ],
                "co2": None,
                "baseline": {
                    "power_w": {"cpu": 8.0, "dram": 2.0},
                    "devices": [],
                    "duration_s": 10.0,
                    "measured_at": "2026-11-21T00:00:00+00:00",
                    "cached": False,
                    "method": "estimate_codecarbon",
                    "is_estimate": True,
                },
                "phases": {
                    "method": "time_share",
                    "prefill_j": 5.0,
                    "decode_j": 9.0,
                    "other_j": 1.0,
                    "idle_j": 15.0,
                    "total_j": 30.0,
                    "closure_rel_error": 0.0,
                    "closure_ok": None,  # time share: adds up by construction
                },
            },
            flops={
                "per_output_token": 2.7e8,
                "method": "calflops",
                "params": 134515008,
                "sequence_length": 7,
                "peak_flops_per_s": None,
                "peak_memory_bw_bytes_per_s": None,
                "peak_source": "no peak known",
            },
            requests=[
                {
                    "index": i,
                    "batch": i,
                    "tokens_in": 4,
                    "tokens_out": 3,
                    "t_start_s": 0.0,
                    "t_first_token_s": 0.1,
                    "t_end_s": 0.3,
                }
                for i in range(2)
            ],
            environment={"python": "3.11.7", "platform": "Linux", "cpu": {}, "gpus": []},
        )
    else:
        result["error"] = {"reason": "backend_error", "message": "boom", "exit_code": None}
    result.update(overrides)
    return result


@pytest.fixture
def result_factory():
    return make_result
