"""Synthetic result documents (schema v2 shape) for report tests, demos and the scale benchmark.

Everything here is made up and says so: suite names start with ``synthetic``, model names with
``synthetic/``, the controller's recorded command names this module and the hostname is
``synthetic``. Numbers follow a toy model (bigger batches: more tokens/s, fewer J/token) with seeded
noise, so charts have a shape; they are not measurements of anything.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

from lembench.results.migrate import CURRENT_VERSION
from lembench.suite.expand import experiment_id

COMMAND = "python -m lembench.report.synthetic  # SYNTHETIC data, not a measurement"
GPUS = {
    "NVIDIA H100 80GB HBM3": (700.0, 989e12, 3.35e12),
    "NVIDIA L4": (72.0, 121e12, 0.3e12),
}


def config(
    model: str, backend: str, precision: str, batch_size: int, output_tokens: int = 128
) -> dict[str, Any]:
    """An experiment config like the suite expansion writes."""
    return {
        "backend": backend,
        "model": model,
        "precision": precision,
        "device": "auto",
        "batch_size": batch_size,
        "warmup": {"runs": 1},
        "workload": {
            "kind": "synthetic",
            "num_prompts": max(8, batch_size * 2),
            "input_tokens": 256,
            "output_tokens": output_tokens,
            "exact_output": True,
            "seed": 0,
        },
    }


def _summary(values: list[float]) -> dict[str, Any]:
    s = sorted(values)

    def pct(q: float) -> float:
        pos = (len(s) - 1) * q
        lo, hi = math.floor(pos), math.ceil(pos)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return {
        "n": len(s),
        "mean": sum(s) / len(s),
        "p50": pct(0.5),
        "p90": pct(0.9),
        "p99": pct(0.99),
        "min": s[0],
        "max": s[-1],
    }


def result(
    cfg: dict[str, Any],
    *,
    suite: str = "synthetic-demo",
    cycle: int = 1,
    cycles: int = 3,
    hardware: str | None = "NVIDIA H100 80GB HBM3",
    estimate: bool = False,
    status: str = "ok",
    seed: int = 0,
    timeline: bool = True,
    timeline_interval_s: float = 0.1,
    warnings: list[dict[str, str]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """One synthetic run: (result document, timeline samples or None). ``hardware`` None: CPU."""
    rng = random.Random(f"{seed}-{cycle}-{json.dumps(cfg, sort_keys=True)}")
    eid = experiment_id(cfg)
    run_id = f"20261121T120000Z-{eid[:6]}-c{cycle}"
    doc: dict[str, Any] = {
        "schema_version": CURRENT_VERSION,
        "status": status,
        "suite": suite,
        "experiment_id": eid,
        "run_id": run_id,
        "invocation_id": "20261121T120000Z-synthe",
        "load_group": eid[::-1],
        "cycle": cycle,
        "cycles": cycles,
        "config": cfg,
        "started_at": f"2026-11-21T12:{cycle % 60:02d}:00+00:00",
        "ended_at": f"2026-11-21T12:{cycle % 60:02d}:30+00:00",
        "warnings": list(warnings or []),
        "provenance": {
            "harness_version": "0.1.0",
            "request_sha256": "0" * 64,
            "controller": {
                "lembench_version": "0.1.0",
                "runtime": "local",
                "command": COMMAND,
                "suite_file": f"suites/{suite}.yaml",
                "suite_sha256": "0" * 64,
                "git_commit": None,
                "git_dirty": None,
            },
            "model": {
                "device": "cuda:0" if hardware else "cpu",
                "params": 8_030_000_000,
                # As the llamacpp backend records it: the GGUF file the weights came from.
                **({"file": cfg["model"]} if str(cfg["model"]).endswith(".gguf") else {}),
            },
            "measurement": {
                "requested": {"meters": ["auto"], "country_iso_code": "USA", "region": None}
            },
        },
        "environment": {
            "python": "3.11.7",
            "platform": "Linux-synthetic",
            "hostname": "synthetic",
            "cpu": {"model": "Synthetic CPU", "logical_cores": 16, "physical_cores": 8},
            "gpus": [{"index": 0, "name": hardware, "uuid": "GPU-synthetic"}] if hardware else [],
        },
    }
    if status != "ok":
        doc["error"] = {"reason": "oom", "message": "synthetic failure", "exit_code": 70}
        doc["timeline"] = None
        return doc, None

    b = cfg["batch_size"]
    n_prompts = cfg["workload"]["num_prompts"]
    t_in, t_out = cfg["workload"]["input_tokens"], cfg["workload"]["output_tokens"]
    backend_speed = {"vllm": 3.0, "tensorrt-llm": 3.4, "llamacpp": 1.3}.get(cfg["backend"], 1.0)
    # Quantised weights (an engine's quantization option, a 4-bit GGUF) speed decoding up.
    quantised = (cfg.get("vllm") or {}).get("quantization") or (
        "int4" if "Q4" in str(cfg.get("model", "")) else None
    )
    precision_speed = {"fp32": 0.5, "fp16": 1.0, "bf16": 1.0, "fp8": 1.6, "int4": 1.4}.get(
        quantised or cfg["precision"], 1.0
    )
    peak_w, peak_flops, peak_bw = GPUS.get(hardware or "", (65.0, None, None))
    base_tps = (40.0 if hardware else 6.0) * backend_speed * precision_speed
    tput = base_tps * b**0.8 * rng.uniform(0.96, 1.04)
    tokens_out = n_prompts * t_out
    duration = tokens_out / tput
    power = peak_w * (0.35 + 0.5 * (1 - math.exp(-b / 16))) * rng.uniform(0.97, 1.03)
    idle_w = peak_w * 0.1
    energy = power * duration
    batches = []
    t = 0.0
    for k in range(math.ceil(n_prompts / b)):
        prefill = 0.02 * b * (1 if hardware else 8) / backend_speed
        span = duration / math.ceil(n_prompts / b)
        batches.append((k, t, t + prefill, t + span))
        t += span
    requests = [
        {
            "index": i,
            "batch": i // b,
            "tokens_in": t_in,
            "tokens_out": t_out,
            "t_start_s": batches[i // b][1],
            "t_first_token_s": batches[i // b][2],
            "t_end_s": batches[i // b][3],
        }
        for i in range(n_prompts)
    ]
    ttfts = [r["t_first_token_s"] - r["t_start_s"] for r in requests]
    itl = (duration / math.ceil(n_prompts / b)) / t_out
    prefill_j = sum((p - s) for _, s, p, _ in batches) * (power * 1.2 - idle_w)
    idle_j = idle_w * duration
    decode_j = energy - idle_j - prefill_j
    flops_tok = 2 * 8.03e9
    domain = "gpu" if hardware else "cpu"
    method = "estimate_codecarbon" if estimate else ("nvml_counter" if hardware else "rapl")
    if estimate and not any(w["code"] == "estimate_used" for w in doc["warnings"]):
        doc["warnings"].append(
            {"code": "estimate_used", "message": f"energy includes an estimate ({method})"}
        )
    doc["metrics"] = {
        "num_requests": n_prompts,
        "tokens_in": n_prompts * t_in,
        "tokens_out": tokens_out,
        "duration_s": duration,
        "throughput_out_tok_s": tokens_out / duration,
        "requests_per_s": n_prompts / duration,
        "ttft_s": _summary(ttfts),
        "itl_s": _summary([itl * rng.uniform(0.9, 1.3) for _ in range(32)]),
        "e2e_latency_s": _summary([r["t_end_s"] - r["t_start_s"] for r in requests]),
        "energy_total_j": energy,
        "energy_gpu_j": None,
        "energy_cpu_j": None,
        "energy_dram_j": None,
        f"energy_{domain}_j": energy,
        "avg_power_w": power,
        "idle_power_w": idle_w,
        "energy_net_j": energy - idle_j,
        "j_per_output_token": energy / tokens_out,
        "j_per_output_token_net": (energy - idle_j) / tokens_out,
        "j_per_request": energy / n_prompts,
        "energy_prefill_j": prefill_j,
        "energy_decode_j": decode_j,
        "energy_idle_j": idle_j,
        "j_per_input_token_prefill": prefill_j / (n_prompts * t_in),
        "j_per_output_token_decode": decode_j / tokens_out,
        "flops_per_output_token": flops_tok,
        "mfu": flops_tok * (n_prompts * (t_in + t_out)) / duration / peak_flops
        if peak_flops
        else None,
        "mbu": 2 * 8.03e9 * t_out * len(batches) / duration / peak_bw if peak_bw else None,
        "co2_g": energy / 3.6e6 * 369.0,
    }
    doc["energy"] = {
        "method": method,
        "is_estimate": estimate,
        "components": [
            {
                "meter": "codecarbon" if estimate else ("nvml" if hardware else "rapl"),
                "method": method,
                "domain": domain,
                "is_estimate": estimate,
                "energy_j": energy,
            }
        ],
        "baseline": {
            "power_w": {domain: idle_w},
            "devices": [],
            "duration_s": 10.0,
            "measured_at": "2026-11-21T11:59:00+00:00",
            "cached": False,
            "method": method,
            "is_estimate": estimate,
        },
        "phases": {
            "method": "time_share" if estimate else "timeline",
            "prefill_j": prefill_j,
            "decode_j": decode_j,
            "other_j": 0.0,
            "idle_j": idle_j,
            "total_j": energy,
            "closure_rel_error": 0.0,
            "closure_ok": None if estimate else True,
        },
    }
    doc["flops"] = {
        "per_output_token": flops_tok,
        "method": "params_x2",
        "params": 8_030_000_000,
        "peak_flops_per_s": peak_flops,
        "peak_memory_bw_bytes_per_s": peak_bw,
        "peak_source": "synthetic",
    }
    doc["requests"] = requests
    samples = None
    if timeline and not estimate:
        samples = _timeline(batches, duration, power, idle_w, domain, timeline_interval_s, rng)
        doc["timeline"] = {
            "file": "timeline.jsonl",
            "interval_s": timeline_interval_s,
            "samples": len(samples),
            "fields": ["t_s", "energy_j", "power_w"],
        }
    else:
        doc["timeline"] = None
    return doc, samples


def _timeline(batches, duration, power, idle_w, domain, interval, rng) -> list[dict[str, Any]]:
    """Cumulative energy at ``interval`` steps: prefill draws more power than decode."""

    def p_at(t: float) -> float:
        for _, s, first, end in batches:
            if s <= t < first:
                return power * 1.2
            if first <= t < end:
                return power * rng.uniform(0.95, 1.02)
        return idle_w * 1.5

    samples, e, t = [], 0.0, 0.0
    while True:
        p = p_at(t)
        samples.append({"t_s": round(t, 4), "energy_j": {domain: e}, "power_w": {domain: p}})
        if t >= duration:
            return samples
        step = min(interval, duration - t)
        e += p * step
        t += step


def write_run(root: Path, doc: dict[str, Any], samples: list[dict[str, Any]] | None = None) -> Path:
    """Write a run folder as the store lays it out (no validation: synthetic v2 documents)."""
    folder = Path(root) / doc["suite"] / doc["experiment_id"] / doc["run_id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(doc), "utf-8")
    if samples is not None:
        with open(folder / "timeline.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(s) + "\n" for s in samples)
    return folder


def demo(root: Path, cycles: int = 3) -> int:
    """A small, varied synthetic results folder (for screenshots and browser tests); returns the
    number of runs written."""
    n = 0
    fp8 = {"vllm": {"quantization": "fp8"}}
    grid = [
        ("synthetic/demo-8b", "vllm", "bf16", "NVIDIA H100 80GB HBM3", None),
        ("synthetic/demo-8b", "pytorch", "bf16", "NVIDIA H100 80GB HBM3", None),
        # Quantisation is an engine option (vLLM's fp8) or the GGUF file, never a precision: the
        # result schema allows fp32/fp16/bf16 only, and the store skips anything invalid.
        ("synthetic/demo-8b", "vllm", "bf16", "NVIDIA H100 80GB HBM3", fp8),
        ("synthetic/demo-8b-Q4_K_M.gguf", "llamacpp", "fp16", "NVIDIA L4", None),
        ("synthetic/demo-1b", "pytorch", "fp32", None, None),
    ]  # fmt: skip
    for model, backend, precision, hardware, options in grid:
        for b in (1, 4, 16, 64) if hardware else (1, 4):
            cfg = {**config(model, backend, precision, b), **(options or {})}
            for c in range(1, cycles + 1):
                doc, samples = result(
                    cfg, cycle=c, cycles=cycles, hardware=hardware, estimate=hardware is None
                )
                write_run(root, doc, samples)
                n += 1
    return n


if __name__ == "__main__":  # pragma: no cover
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "synthetic-results")
    print(f"{demo(target)} SYNTHETIC runs written under {target}{os.sep}")
