"""Usage scenarios and their latency targets.

- ``chat``: interactive, tokens are streamed to a person: the first token must come soon (TTFT) and
  the next ones steadily (ITL).
- ``api``: request/response, the caller waits for the whole answer: end-to-end latency.
- ``batch``: offline jobs: no latency target; only energy and throughput count.

Default limits are published ones (MLPerf Inference's server-scenario constraints, 99th
percentile; see ``SOURCES``); ``--max-ttft-s``, ``--max-itl-s`` and ``--max-e2e-s`` override or add
limits. A target is met when the mean over an experiment's runs of the run's p99 is at or below it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.contract.slos import MLPERF_SERVER
from lembench.advice.data import Experiment
from lembench.errors import UserError

SCENARIO_NAMES = ("chat", "api", "batch")

# The limits themselves live in the harness contract (goodput uses the same table).
_LIMITS = {"ttft_p99_s": "ttft", "itl_p99_s": "tpot", "e2e_p99_s": "e2e"}
SOURCES = {metric: MLPERF_SERVER[key].source for metric, key in _LIMITS.items()}

#: Metric -> (label, default limit in seconds).
_TARGETS = {
    "ttft_p99_s": ("TTFT p99", MLPERF_SERVER["ttft"].limit_s),
    "itl_p99_s": ("ITL p99", MLPERF_SERVER["tpot"].limit_s),
    "e2e_p99_s": ("E2E p99", MLPERF_SERVER["e2e"].limit_s),
}

_DEFAULTS = {
    "chat": ("ttft_p99_s", "itl_p99_s"),
    "api": ("e2e_p99_s",),
    "batch": (),
}

_DESCRIPTIONS = {
    "chat": "interactive chat: answers are streamed, so the first token and the pace count",
    "api": "request/response API: the caller waits for the whole answer",
    "batch": "offline batch jobs: no latency target, only energy and throughput",
}


@dataclass(frozen=True)
class Target:
    """One latency limit."""

    metric: str  # summary metric, e.g. ttft_p99_s
    label: str
    limit_s: float
    source: str


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Check:
    """How an experiment fares against a scenario's targets."""

    meets: bool | None  # None: a needed latency was not recorded
    results: tuple[tuple[Target, float | None], ...]  # (target, measured mean p99)

    @property
    def worst_ratio(self) -> float:
        """The largest measured/limit ratio (inf when a metric is missing; 0 without targets)."""
        ratios = [float("inf") if v is None else v / t.limit_s for t, v in self.results]
        return max(ratios, default=0.0)

    def missed(self) -> list[tuple[Target, float | None]]:
        return [(t, v) for t, v in self.results if v is None or v > t.limit_s]


def scenario(
    name: str,
    max_ttft_s: float | None = None,
    max_itl_s: float | None = None,
    max_e2e_s: float | None = None,
) -> Scenario:
    """The scenario ``name`` with its default targets, overridden (or extended) by the limits the
    user gave. Raises UserError for an unknown name or a limit that is not positive."""
    if name not in SCENARIO_NAMES:
        raise UserError(f"--scenario: unknown scenario {name!r}; use one of {SCENARIO_NAMES}")
    given = {"ttft_p99_s": max_ttft_s, "itl_p99_s": max_itl_s, "e2e_p99_s": max_e2e_s}
    targets = []
    for metric, (label, default) in _TARGETS.items():
        value = given[metric]
        if value is not None:
            flag = "--max-" + metric.split("_")[0] + "-s"
            if not value > 0:
                raise UserError(f"{flag}: must be a number of seconds > 0, got {value:g}")
            targets.append(Target(metric, label, float(value), f"{flag} (given)"))
        elif metric in _DEFAULTS[name]:
            targets.append(Target(metric, label, default, SOURCES[metric]))
    return Scenario(name, _DESCRIPTIONS[name], tuple(targets))


def check(experiment: Experiment, scn: Scenario) -> Check:
    """Whether ``experiment`` meets every target of ``scn`` (mean of its runs' p99 <= limit)."""
    results = tuple((t, experiment.mean(t.metric)) for t in scn.targets)
    if any(v is None for _, v in results):
        missing_fails = any(v is not None and v > t.limit_s for t, v in results)
        return Check(False if missing_fails else None, results)
    return Check(all(v <= t.limit_s for t, v in results), results)  # type: ignore[operator]
