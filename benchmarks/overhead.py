"""Harness overhead, as ratios measured in one run (same model, prompts and process; interleaved
rounds so machine drift hits every variant alike):

- harness/bare: throughput the harness measures (meters, 10 Hz timeline, token timestamps) vs a
  bare transformers ``generate`` loop (goal >= 0.99);
- meters on/off: the harness with every available meter and the 10 Hz timeline vs the harness with
  no meter and no timeline sampling (goal >= 0.99).

    .venv/bin/python benchmarks/overhead.py [--batch-size 4] [--rounds 5] [--model smollm2-135m]

A ratio is only meaningful within one run: it is the measurement, not either throughput.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

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
    parser.add_argument("--batches", type=int, default=2, help="batches per measured window")
    parser.add_argument("--input-tokens", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    workload = {
        "kind": "synthetic",
        "num_prompts": args.batch_size * args.batches,
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
        "workload": workload,
        "pytorch": {"threads": None, "attn_implementation": None},
    }
    backend = PyTorchBackend(resolve_ref(args.model), config)
    info = backend.load()
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

    def harness_throughput(session: Session) -> float:
        result = {"experiment_id": "overhead"}
        measure_experiment(session, config, result)
        return result["metrics"]["throughput_out_tok_s"]

    print(
        f"model {args.model} {args.precision} on {info.device}; batch {args.batch_size} x "
        f"{args.batches} batches, {args.input_tokens}->{args.output_tokens} tokens; "
        f"meters: {[m.name for m in meters]} (skipped: {sorted(skipped)}); "
        f"telemetry: {'NVML' if telemetry else 'none'}"
    )
    bare_throughput(backend, batches[:1], args.output_tokens)  # warm every path's kernels
    vs_bare, on_off = [], []
    for r in range(1, args.rounds + 1):
        bare = bare_throughput(backend, batches, args.output_tokens)
        on = harness_throughput(full)
        without = harness_throughput(off)
        vs_bare.append(on / bare)
        on_off.append(on / without)
        print(
            f"round {r}: bare {bare:8.2f}  harness {on:8.2f}  harness-no-meters {without:8.2f} "
            f"tok/s   harness/bare {on / bare:.4f}   meters on/off {on / without:.4f}"
        )
    for meter in meters:
        meter.close()
    if telemetry is not None:
        telemetry.close()
    for name, ratios in (("harness/bare", vs_bare), ("meters+timeline on/off", on_off)):
        spread = max(ratios) - min(ratios)
        print(
            f"{name} throughput ratio: median {statistics.median(ratios):.4f} over {len(ratios)} "
            f"rounds (min {min(ratios):.4f}, max {max(ratios):.4f}); goal >= 0.99"
            + (f"  [noisy: spread {spread:.3f}]" if spread > 0.05 else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
