"""Harness overhead, as ratios measured in one run (same model, prompts and process; interleaved
rounds so machine drift hits every variant alike):

- harness/bare: throughput the harness measures (meters, 10 Hz timeline, token timestamps) vs a
  bare transformers ``generate`` loop (goal >= 0.99);
- meters on/off: the harness with every available meter and the 10 Hz timeline vs the harness with
  no meter and no timeline sampling (goal >= 0.99).

    .venv/bin/python benchmarks/overhead.py [--batch-size 4] [--rounds 7] [--model smollm2-135m]

A ratio is only meaningful within one run: it is the measurement, not either throughput. The
variants' order rotates every round (whichever runs first in a round warms caches and meets another
machine state: on a quiet machine a fixed order alone moved the ratio ~3 %). The window length is
sized from the measured noise: a pilot times single batches, and each window gets enough batches
that its expected noise (batch-latency CV / sqrt(batches)) is at most ``--target-noise``. Ratios
are reported as the median with a ~95 % interval, and beside wall throughput the CPU-time
efficiency (output tokens per CPU-second of the process, all threads), which a loaded shared
machine disturbs less than wall time. The machine's load average is printed with every round.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _stats import median_interval

from harness.backends.base import Prompt
from harness.backends.pytorch import PyTorchBackend
from harness.hardware.telemetry import Telemetry
from harness.meters.chain import select_meters
from harness.models.refs import resolve_ref
from harness.window.measure import LoadedBackend, Session, measure_experiment
from harness.workloads import build_prompts


def bare_throughput(backend: PyTorchBackend, batches: list[list[Prompt]], new_tokens: int) -> float:
    """Output tokens per second of plain ``model.generate`` over ``batches`` (no streamer, no
    meters): the loop a user would write by hand."""
    import torch
    from transformers import GenerationConfig

    model, pad = backend.model, backend.tokenizer.pad_token_id or 0
    config = GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        pad_token_id=pad,
    )
    tensors = []
    for batch in batches:  # inputs built outside the timed loop, as the harness does
        width = max(len(p.token_ids) for p in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(batch):
            ids[row, width - len(p.token_ids) :] = torch.tensor(p.token_ids)
            mask[row, width - len(p.token_ids) :] = 1
        tensors.append((ids.to(backend.device), mask.to(backend.device)))
    produced = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for ids, mask in tensors:
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
            produced += out[:, ids.shape[1] :].numel()
    return produced / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--batches", type=int, default=0, help="batches per window (0: sized from the noise)"
    )
    parser.add_argument("--input-tokens", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: the CPUs this process may use)"
    )
    parser.add_argument("--target-noise", type=float, default=0.003)
    parser.add_argument("--max-batches", type=int, default=24)
    args = parser.parse_args()

    pilot_workload = {
        "kind": "synthetic",
        "num_prompts": args.batch_size,
        "input_tokens": args.input_tokens,
        "output_tokens": args.output_tokens,
        "exact_output": True,
        "seed": 0,
    }
    config = {
        "backend": "pytorch",
        "model": args.model,
        "precision": args.precision,
        "device": args.device,
        "batch_size": args.batch_size,
        "warmup": {"runs": 0},
        "workload": pilot_workload,
        "pytorch": {"threads": args.threads or None, "attn_implementation": None},
    }
    backend = PyTorchBackend(resolve_ref(args.model), config)
    info = backend.load()
    pilot = build_prompts(pilot_workload, backend, None)
    bare_throughput(backend, [pilot], args.output_tokens)  # warm every path's kernels
    batches_per_window, cv = args.batches, None
    if not batches_per_window:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            bare_throughput(backend, [pilot], args.output_tokens)
            times.append(time.perf_counter() - t0)
        cv = statistics.stdev(times) / statistics.mean(times)
        batches_per_window = min(max(math.ceil((cv / args.target_noise) ** 2), 2), args.max_batches)
    workload = {**pilot_workload, "num_prompts": args.batch_size * batches_per_window}
    config["workload"] = workload
    loaded = LoadedBackend(backend, {}, {"name": "pytorch", "versions": info.versions})
    measurement = {
        "meters": ["auto"],
        "country_iso_code": "USA",
        "region": None,
        "idle_baseline_s": 0,
        "baseline_cache_s": 0,
        "timeline_interval_s": 0.1,
        "cv_threshold": 0.1,
    }
    meters, skipped = select_meters(measurement)
    telemetry = Telemetry.open()
    io_dir = Path(tempfile.mkdtemp(prefix="lembench-overhead-"))
    full = Session(loaded, meters, measurement, io_dir, telemetry=telemetry)
    # "Off": no meter, no telemetry, and a timeline period longer than the window (start and stop
    # samples only), so only the harness's own bookkeeping remains.
    bare_measurement = {**measurement, "meters": [], "timeline_interval_s": 60.0}
    off = Session(loaded, [], bare_measurement, io_dir)
    prompts = build_prompts(workload, backend, None)
    batches = [prompts[i : i + args.batch_size] for i in range(0, len(prompts), args.batch_size)]
    tokens = len(prompts) * args.output_tokens

    def harness_throughput(session: Session) -> float:
        result = {"experiment_id": "overhead"}
        measure_experiment(session, config, result)
        return result["metrics"]["throughput_out_tok_s"]

    variants: dict[str, Callable[[], float]] = {
        "bare": lambda: bare_throughput(backend, batches, args.output_tokens),
        "harness": lambda: harness_throughput(full),
        "harness-no-meters": lambda: harness_throughput(off),
    }
    names = list(variants)
    print(
        f"model {args.model} {args.precision} on {info.device}, {backend.threads.count} threads "
        f"({backend.threads.source}); batch {args.batch_size} x {batches_per_window} batches per "
        f"window ({'sized from pilot batch-latency CV ' + format(cv, '.4f') if cv else 'given'}), "
        f"{args.input_tokens}->{args.output_tokens} tokens; meters: {[m.name for m in meters]} "
        f"(skipped: {sorted(skipped)}); telemetry: {'NVML' if telemetry else 'none'}"
    )
    harness_throughput(full)  # the harness's own first-call costs (FLOPs count) outside rounds
    vs_bare, on_off, cpu_vs_bare = [], [], []
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate: no variant always first
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for name in order:
            c0 = time.process_time()
            wall[name] = variants[name]()
            cpu[name] = tokens / (time.process_time() - c0)  # output tokens per CPU-second
        vs_bare.append(wall["harness"] / wall["bare"])
        on_off.append(wall["harness"] / wall["harness-no-meters"])
        cpu_vs_bare.append(cpu["harness"] / cpu["bare"])
        print(
            f"round {r + 1} ({' > '.join(order)}; load avg {os.getloadavg()[0]:.2f}): bare "
            f"{wall['bare']:8.2f}  harness {wall['harness']:8.2f}  harness-no-meters "
            f"{wall['harness-no-meters']:8.2f} tok/s   harness/bare {vs_bare[-1]:.4f}   meters "
            f"on/off {on_off[-1]:.4f}   CPU-time harness/bare {cpu_vs_bare[-1]:.4f} "
            f"(tok per CPU-s: bare {cpu['bare']:.1f}, harness {cpu['harness']:.1f})",
            flush=True,
        )
    for meter in meters:
        meter.close()
    if telemetry is not None:
        telemetry.close()
    for name, ratios in (
        ("harness/bare", vs_bare),
        ("meters+timeline on/off", on_off),
        ("CPU-time harness/bare", cpu_vs_bare),
    ):
        med, lo, hi = median_interval(ratios)
        print(
            f"{name} throughput ratio: median {med:.4f} [{lo:.4f}, {hi:.4f}] over {len(ratios)} "
            f"rounds (~95% interval of the median); goal >= 0.99"
            + (f"  [noisy: interval width {hi - lo:.3f}]" if hi - lo > 0.05 else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
