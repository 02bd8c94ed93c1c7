"""Goodput: the share of requests that met their latency limits, and energy per *good* token.

A request is good when its TTFT (first token minus submission: queueing included, as a client
sees it) and its TPOT (time per output token after the first: ``(t_end - t_first_token) /
(tokens_out - 1)``, MLPerf's definition) are both within the limits. Default limits are MLPerf
Inference's server-scenario constraints (``harness.contract.slos``). A request without a first
token is not good; one with a single output token has no TPOT and is judged by TTFT alone.

``j_per_good_output_token`` is the window's whole gross energy over the good requests' output
tokens: tokens of requests that missed their limits still cost energy but are not counted as
served, so the figure grows as an engine trades latency for throughput.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.contract.slos import GOODPUT_DEFAULTS, MLPERF_SERVER, Limit


@dataclass(frozen=True)
class RequestLatency:
    """One request's latencies (s); ``tpot_s`` None with fewer than two output tokens."""

    ttft_s: float | None
    tpot_s: float | None
    tokens_out: int


def latencies(requests: Sequence[dict[str, Any]]) -> list[RequestLatency]:
    """Per-request TTFT and TPOT from the result's request rows."""
    out = []
    for r in requests:
        first, n = r["t_first_token_s"], r["tokens_out"]
        ttft = None if first is None else first - r["t_start_s"]
        tpot = (r["t_end_s"] - first) / (n - 1) if first is not None and n > 1 else None
        out.append(RequestLatency(ttft, tpot, n))
    return out


def meets(req: RequestLatency, limits: Sequence[Limit]) -> bool:
    """Whether ``req`` is within every limit (TTFT and TPOT; other limits are not per token)."""
    if req.ttft_s is None:
        return False
    for limit in limits:
        if limit.name == "ttft" and req.ttft_s > limit.limit_s:
            return False
        if limit.name == "tpot" and req.tpot_s is not None and req.tpot_s > limit.limit_s:
            return False
    return True


def limits_for(slo: dict[str, Any] | None) -> list[Limit]:
    """The limits of a suite's ``traffic.slo`` block (``ttft_s``, ``tpot_s``), each one not
    given taken from MLPerf's server defaults; all defaults without a block."""
    given = slo or {}
    out = []
    for name in GOODPUT_DEFAULTS:
        value = given.get(f"{name}_s")
        default = MLPERF_SERVER[name]
        if value is None:
            out.append(default)
        else:
            out.append(Limit(name, default.label, float(value), f"suite traffic.slo.{name}_s"))
    return out


def goodput(
    requests: Sequence[dict[str, Any]],
    energy_total_j: float | None,
    limits: Sequence[Limit] | None = None,
) -> tuple[list[bool], dict[str, Any]]:
    """(per-request met flags, the result's ``goodput`` block). ``limits`` default to MLPerf's
    server TTFT and TPOT constraints."""
    chosen = list(limits) if limits is not None else [MLPERF_SERVER[k] for k in GOODPUT_DEFAULTS]
    reqs = latencies(requests)
    met = [meets(r, chosen) for r in reqs]
    good_tokens = sum(r.tokens_out for r, ok in zip(reqs, met, strict=True) if ok)
    block = {
        "limits": [{"name": x.name, "limit_s": x.limit_s, "source": x.source} for x in chosen],
        "requests_met": sum(met),
        "fraction": sum(met) / len(met) if met else None,
        "good_output_tokens": good_tokens,
        "j_per_good_output_token": (
            energy_total_j / good_tokens if energy_total_j is not None and good_tokens else None
        ),
    }
    return met, block
