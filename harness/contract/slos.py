"""Latency limits (service-level objectives) shared by the harness (goodput) and the controller
(``lembench advise`` scenarios): one table, MLPerf Inference's server-scenario constraints.

Each limit is a 99th-percentile bound in MLPerf; goodput applies it to every request on its own
(a request is good when it meets all of them), the advisor to a run's p99.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where the default limits come from.
MLPERF_CONF = "MLCommons inference, loadgen/mlperf.conf"


@dataclass(frozen=True)
class Limit:
    """One latency limit: the metric it bounds, its value in seconds and where it comes from."""

    name: str  # "ttft" | "tpot" | "e2e"
    label: str
    limit_s: float
    source: str


#: MLPerf server-scenario limits: name -> Limit.
MLPERF_SERVER: dict[str, Limit] = {
    "ttft": Limit(
        "ttft",
        "TTFT",
        2.0,
        f"{MLPERF_CONF}: llama2-70b.Server.ttft_latency = 2000 ms (99th percentile)",
    ),
    "tpot": Limit(
        "tpot",
        "TPOT",
        0.2,
        f"{MLPERF_CONF}: llama2-70b.Server.tpot_latency = 200 ms (99th percentile)",
    ),
    "e2e": Limit(
        "e2e",
        "E2E",
        20.0,
        f"{MLPERF_CONF}: gptj.Server.target_latency = 20000 ms (99th percentile)",
    ),
}

#: The limits a streamed request is held to for goodput (MLPerf's LLM server constraints).
GOODPUT_DEFAULTS: tuple[str, ...] = ("ttft", "tpot")
