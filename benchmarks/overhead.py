"""Harness overhead: throughput of a bare transformers ``generate`` loop vs throughput as measured
by the harness (streamer timestamps, meters running, per-batch bookkeeping), same model, same
prompts, same process, interleaved rounds so machine drift hits both alike.

    .venv/bin/python benchmarks/overhead.py [--batch-size 4] [--rounds 5] [--model smollm2-135m]

Prints each round and the median ratio harness/bare (goal: >= 0.99). A ratio is only meaningful
within one run: it is the measurement, not either throughput.
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
from harness.io import EventLog
from harness.meters.chain import select_meters
from harness.models import resolve_ref
from harness.protocol import LoadedBackend, measure_experiment
from harness.workloads import build_prompts


def bare_throughput(backend: PyTorchBackend, batches: list[list[Prompt]], new_tokens: int) -> float:
    """Output tokens per second of plain ``model.generate`` over ``batches`` (no streamer, no
    meters): the loop a user would write by hand."""
    import torch
    from transformers import GenerationConfig

    model, pad = backend.model, backend.tokenizer.pad_token_id or 0
    config = GenerationConfig(
        do_sample=False, num_beams=1, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
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
        "kind": "synthetic", "num_prompts": args.batch_size * args.batches,
        "input_tokens": args.input_tokens, "output_tokens": args.output_tokens,
        "exact_output": True, "seed": 0,
    }
    config = {
        "backend": "pytorch", "model": args.model, "precision": args.precision,
        "device": args.device, "batch_size": args.batch_size, "warmup": {"runs": 0},
        "workload": workload, "pytorch": {"threads": None, "attn_implementation": None},
    }
    backend = PyTorchBackend(resolve_ref(args.model), config)
    info = backend.load()
    loaded = LoadedBackend(backend, {}, {"name": "pytorch", "versions": info.versions})
    measurement = {"meters": ["auto"], "country_iso_code": "USA", "region": None}
    meters, skipped = select_meters(measurement)
    prompts = build_prompts(workload, backend, None)
    batches = [prompts[i : i + args.batch_size] for i in range(0, len(prompts), args.batch_size)]
    events = EventLog(Path(tempfile.mkdtemp(prefix="lembench-overhead-")))

    print(f"model {args.model} {args.precision} on {info.device}; batch {args.batch_size} x "
          f"{args.batches} batches, {args.input_tokens}->{args.output_tokens} tokens; "
          f"meters: {[m.name for m in meters]} (skipped: {sorted(skipped)})")
    bare_throughput(backend, batches[:1], args.output_tokens)  # warm both paths' kernels
    ratios = []
    for r in range(1, args.rounds + 1):
        bare = bare_throughput(backend, batches, args.output_tokens)
        result = {"provenance": {"measurement": {"requested": measurement}}}
        measure_experiment(loaded, meters, config, None, result, events, 0)
        harness = result["metrics"]["throughput_out_tok_s"]
        ratios.append(harness / bare)
        print(f"round {r}: bare {bare:8.2f} tok/s   harness {harness:8.2f} tok/s   "
              f"ratio {harness / bare:.4f}")
    for meter in meters:
        meter.close()
    median = statistics.median(ratios)
    spread = max(ratios) - min(ratios)
    print(f"harness/bare throughput ratio: median {median:.4f} over {len(ratios)} rounds "
          f"(min {min(ratios):.4f}, max {max(ratios):.4f}); goal >= 0.99")
    if spread > 0.05:
        print(f"warning: ratios spread by {spread:.3f}; the machine is noisy, repeat when quiet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
