"""Goodput against latency limits (harness.window.goodput), by hand."""

from __future__ import annotations

import pytest

from harness.contract.slos import MLPERF_SERVER, Limit
from harness.window.goodput import goodput, latencies


def row(t_start: float, first: float | None, end: float, tokens_out: int) -> dict:
    return {
        "t_start_s": t_start,
        "t_first_token_s": first,
        "t_end_s": end,
        "tokens_out": tokens_out,
    }


def test_mlperf_defaults_by_hand() -> None:
    rows = [
        row(0.0, 1.0, 10.0, 91),  # TTFT 1 s, TPOT 9/90 = 0.1 s: good
        row(0.0, 3.0, 4.0, 11),  # TTFT 3 s > 2 s: missed (queued too long)
        row(1.0, 2.0, 32.0, 101),  # TTFT 1 s, TPOT 30/100 = 0.3 s > 0.2 s: missed
        row(0.0, 0.5, 0.5, 1),  # one token: no TPOT, TTFT 0.5 s: good
        row(0.0, None, 2.0, 0),  # nothing generated: missed
    ]
    met, block = goodput(rows, 1020.0)
    assert met == [True, False, False, True, False]
    assert block["requests_met"] == 2 and block["fraction"] == pytest.approx(0.4)
    assert block["good_output_tokens"] == 92
    assert block["j_per_good_output_token"] == pytest.approx(1020.0 / 92)
    assert [x["name"] for x in block["limits"]] == ["ttft", "tpot"]
    assert block["limits"][0]["limit_s"] == MLPERF_SERVER["ttft"].limit_s == 2.0


def test_given_limits_and_no_good_tokens() -> None:
    strict = [Limit("ttft", "TTFT", 0.1, "given")]
    met, block = goodput([row(0.0, 1.0, 2.0, 5)], 10.0, strict)
    assert met == [False]
    assert block["j_per_good_output_token"] is None and block["fraction"] == 0.0


def test_latencies() -> None:
    (r,) = latencies([row(2.0, 2.5, 4.5, 5)])
    assert (r.ttft_s, r.tpot_s) == pytest.approx((0.5, 0.5))


def test_suite_limits_override_the_defaults_one_by_one() -> None:
    from harness.window.goodput import limits_for

    assert limits_for(None) == [MLPERF_SERVER["ttft"], MLPERF_SERVER["tpot"]]
    ttft, tpot = limits_for({"tpot_s": 0.05})
    assert ttft == MLPERF_SERVER["ttft"]
    assert (tpot.limit_s, tpot.source) == (0.05, "suite traffic.slo.tpot_s")
    # TPOT 0.1 s meets MLPerf's 200 ms but not a 50 ms limit.
    met, _ = goodput([row(0.0, 1.0, 10.0, 91)], 1.0, limits_for({"tpot_s": 0.05}))
    assert met == [False]
