"""harness.workloads.traffic: arrival schedules, the driver (against a fake serving backend) and the
steady-state window with its energy."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

import pytest

from harness.backends.base import (
    GREEDY,
    Backend,
    BackendOOM,
    FlopsEstimate,
    Generation,
    LoadInfo,
    Prompt,
    Sampling,
)
from harness.meters.base import EnergyComponent
from harness.workloads.traffic import (
    STEADY_STATE_DEFINITION,
    TrafficRun,
    arrival_times,
    run_traffic,
    steady_state,
    steady_state_block,
)


class SleepyServer(Backend):
    """A serving backend whose requests take ``latency`` s and stream ``tokens`` tokens evenly.
    It counts its own concurrency, independently of the driver's bookkeeping."""

    name = "sleepy"
    supports_traffic = True

    def __init__(self, latency: float = 0.05, tokens: int = 4, fail_at: int | None = None) -> None:
        super().__init__({"kind": "hf", "ref": "x/y"}, {})
        self.latency, self.tokens, self.fail_at = latency, tokens, fail_at
        self.active = 0
        self.max_active = 0
        self.seen: list[list[int]] = []

    def load(self) -> LoadInfo:
        return LoadInfo("cpu", "fp32", 0.0)

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def vocab_token_ids(self) -> list[int]:
        return list(range(100))

    def generate(self, prompts, max_new_tokens, exact, sampling=GREEDY):  # type: ignore[no-untyped-def]
        raise AssertionError("traffic must use agenerate")

    async def agenerate(
        self, prompt: Prompt, max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> Generation:
        t_start = time.perf_counter()
        self.seen.append(prompt.token_ids)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.fail_at is not None and len(self.seen) == self.fail_at:
                await asyncio.sleep(0.01)
                raise BackendOOM("server out of memory")
            times = []
            for _ in range(self.tokens):
                await asyncio.sleep(self.latency / self.tokens)
                times.append(time.perf_counter())
        finally:
            self.active -= 1
        return Generation(len(prompt.token_ids), len(times), t_start, times)

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        return FlopsEstimate(None, "unknown")


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(token_ids=[i + 1] * (i + 1)) for i in range(n)]


# -- arrival schedules --------------------------------------------------------------------------
def test_poisson_gaps_have_mean_one_over_qps_and_are_reproducible() -> None:
    offsets = arrival_times({"pattern": "poisson", "qps": 4.0, "seed": 7}, 4001)
    assert offsets is not None and offsets[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert all(g >= 0 for g in gaps)
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.05)
    # Exponential gaps: standard deviation equals the mean.
    assert statistics.stdev(gaps) == pytest.approx(0.25, rel=0.08)
    assert arrival_times({"pattern": "poisson", "qps": 4.0, "seed": 7}, 4001) == offsets
    assert arrival_times({"pattern": "poisson", "qps": 4.0, "seed": 8}, 4001) != offsets


def test_constant_and_concurrency_schedules() -> None:
    assert arrival_times({"pattern": "constant", "qps": 2}, 4) == [0.0, 0.5, 1.0, 1.5]
    assert arrival_times({"pattern": "concurrency", "concurrency": 3}, 4) is None
    with pytest.raises(ValueError, match="pattern"):
        arrival_times({"pattern": "bursty", "qps": 1}, 2)


# -- the driver --------------------------------------------------------------------------------
def test_concurrency_pattern_keeps_n_in_flight_and_never_more() -> None:
    server = SleepyServer(latency=0.04)
    prompts = _prompts(10)
    t0 = time.perf_counter()
    run = run_traffic(server, prompts, {"pattern": "concurrency", "concurrency": 3}, 4, True,
                      GREEDY, t0)  # fmt: skip
    assert server.max_active == 3
    assert run.info["max_in_flight"] == 3
    assert run.info["requests"] == 10
    # Results come back in submission order, one per prompt.
    assert [g.tokens_in for g in run.generations] == [len(p.token_ids) for p in prompts]
    assert all(g.tokens_out == 4 for g in run.generations)
    # The first three go out at once; later ones only when a slot frees up.
    assert max(run.t_submit[:3]) - t0 < 0.03
    assert min(run.t_submit[3:]) >= min(g.t_end for g in run.generations[:3]) - 1e-6
    assert 2.0 < run.info["mean_in_flight"] <= 3.0
    assert run.info["concurrency_target"] == 3 and run.info["qps_target"] is None


def test_constant_arrivals_go_out_on_schedule() -> None:
    server = SleepyServer(latency=0.02)
    t0 = time.perf_counter()
    run = run_traffic(server, _prompts(6), {"pattern": "constant", "qps": 20}, 4, False, GREEDY, t0)
    for k, t in enumerate(run.t_submit):
        assert k / 20 - 1e-6 <= t - t0 < k / 20 + 0.04
        assert run.t_arrival[k] == pytest.approx(t0 + k / 20)
    assert run.info["qps_achieved"] == pytest.approx(20, rel=0.25)
    assert run.info["client_wait_s_max"] < 0.04


def test_poisson_with_a_cap_waits_on_the_client_side() -> None:
    server = SleepyServer(latency=0.05)
    traffic = {"pattern": "poisson", "qps": 500, "concurrency": 2, "seed": 1}
    run = run_traffic(server, _prompts(8), traffic, 4, False, GREEDY)
    assert server.max_active == 2 and run.info["max_in_flight"] == 2
    assert run.info["client_wait_s_max"] > 0.05  # the 8th arrival waited for three rounds
    # t_start is the real submission (after the wait), never the scheduled arrival.
    for g, s, a in zip(run.generations, run.t_submit, run.t_arrival, strict=True):
        assert g.t_start >= s >= a - 1e-6


def test_a_failing_request_stops_the_run_with_its_own_exception() -> None:
    server = SleepyServer(latency=0.05, fail_at=3)
    with pytest.raises(BackendOOM, match="server out of memory"):
        run_traffic(server, _prompts(8), {"pattern": "concurrency", "concurrency": 2}, 4, False)
    assert server.active == 0  # the others were cancelled, not left running
    with pytest.raises(BackendOOM):
        run_traffic(SleepyServer(fail_at=2), _prompts(8), {"pattern": "constant", "qps": 100}, 4,
                    False)  # fmt: skip


def test_non_serving_backend_is_refused() -> None:
    server = SleepyServer()
    server.supports_traffic = False  # type: ignore[misc]
    with pytest.raises(ValueError, match="does not serve traffic"):
        run_traffic(server, _prompts(1), {"pattern": "constant", "qps": 1}, 4, False)


# -- steady state ------------------------------------------------------------------------------
def _gen(t_start: float, times: list[float]) -> Generation:
    return Generation(tokens_in=5, tokens_out=len(times), t_start=t_start, token_times=times)


def _hand_run(t0: float = 100.0) -> TrafficRun:
    """Three requests submitted at t0+0, +1, +2; the first completes at +1.5."""
    gens = [
        _gen(t0 + 0.0, [t0 + 0.5, t0 + 1.0, t0 + 1.5]),
        _gen(t0 + 1.0, [t0 + 1.8, t0 + 2.4, t0 + 3.0]),
        _gen(t0 + 2.0, [t0 + 2.2, t0 + 2.9, t0 + 3.5]),
    ]
    return TrafficRun(gens, [t0 + 0.0, t0 + 1.0, t0 + 2.0], {})


def test_steady_state_runs_from_first_completion_to_last_submission() -> None:
    assert steady_state(_hand_run(), 100.0) == pytest.approx((1.5, 2.0))
    assert steady_state(TrafficRun([], [], {}), 0.0) is None
    # The first completes at 0.5, before the last submission at 1.0: a (short) steady state.
    serial = TrafficRun([_gen(0.0, [0.5]), _gen(1.0, [1.5])], [0.0, 1.0], {})
    assert steady_state(serial, 0.0) == pytest.approx((0.5, 1.0))
    # Nothing completed before the last submission: the load never settled.
    never = TrafficRun([_gen(0.0, [3.0]), _gen(1.0, [4.0])], [0.0, 1.0], {})
    assert steady_state(never, 0.0) is None


def test_steady_state_block_interpolates_energy_by_hand() -> None:
    t0 = 100.0
    run = _hand_run(t0)
    samples: list[dict[str, Any]] = [
        {"t_s": 0.0, "energy_j": {"cpu": 0.0, "gpu": 0.0}},
        {"t_s": 1.0, "energy_j": {"cpu": 10.0, "gpu": 100.0}},
        {"t_s": 2.0, "energy_j": {"cpu": 30.0, "gpu": 300.0}},
        {"t_s": 3.0, "energy_j": {"cpu": 60.0, "gpu": 400.0}},
    ]
    components = [
        EnergyComponent("rapl", "rapl", "cpu", False, 60.0),
        EnergyComponent("nvml", "nvml_counter", "gpu", False, 400.0),
    ]
    block = steady_state_block(run, t0, samples, components)
    assert block is not None and run.info["steady_state"] is block
    assert block["start_s"] == pytest.approx(1.5) and block["end_s"] == pytest.approx(2.0)
    assert block["duration_s"] == pytest.approx(0.5)
    # cpu: 30 - (10 + 0.5 * 20) = 10; gpu: 300 - (100 + 0.5 * 200) = 100.
    assert block["energy_j"] == pytest.approx(110.0)
    # Tokens inside [1.5, 2.0]: 1.5 (req 0) and 1.8 (req 1).
    assert block["tokens_out"] == 2
    assert block["j_per_output_token"] == pytest.approx(55.0)
    assert block["throughput_out_tok_s"] == pytest.approx(4.0)
    assert block["requests_completed"] == 1
    # In flight: req 0 until 1.5 (0 s), req 1 all 0.5 s, req 2 from 2.0 (0 s) -> 1.0.
    assert block["mean_in_flight"] == pytest.approx(1.0)
    assert block["definition"] == STEADY_STATE_DEFINITION
    assert "cpu:rapl" in block["energy_method"] and "gpu:nvml_counter" in block["energy_method"]


def test_steady_state_energy_is_none_without_mid_window_samples() -> None:
    run = _hand_run(0.0)
    samples = [{"t_s": 0.0, "energy_j": {}}, {"t_s": 3.5, "energy_j": {}}]
    components = [EnergyComponent("codecarbon", "estimate_codecarbon", "cpu", True, 9.0)]
    block = steady_state_block(run, 0.0, samples, components)
    assert block is not None
    assert block["energy_j"] is None and block["j_per_output_token"] is None
    assert "estimate_codecarbon" in block["energy_method"]
    assert "not readable mid-window" in block["energy_method"]


def test_steady_state_energy_leaves_out_unsampled_domains_and_says_so() -> None:
    run = _hand_run(0.0)
    samples = [{"t_s": 0.0, "energy_j": {"cpu": 0.0}}, {"t_s": 4.0, "energy_j": {"cpu": 40.0}}]
    components = [
        EnergyComponent("rapl", "rapl", "cpu", False, 40.0),
        EnergyComponent("codecarbon", "estimate_codecarbon", "gpu", True, 9.0),
    ]
    block = steady_state_block(run, 0.0, samples, components)
    assert block is not None
    assert block["energy_j"] == pytest.approx(5.0)  # 10 J/s over 0.5 s
    assert "left out: gpu:estimate_codecarbon" in block["energy_method"]


def test_info_block_matches_the_result_schema() -> None:
    import json
    from pathlib import Path

    import jsonschema

    schema = json.loads(Path("schemas/result.schema.json").read_text())["properties"]["traffic"]
    run = run_traffic(SleepyServer(latency=0.03), _prompts(5), {"pattern": "constant", "qps": 50},
                      4, True)  # fmt: skip
    block = steady_state_block(run, run.t_submit[0], [], [])
    jsonschema.validate(run.info, schema)
    assert block is None or block["energy_j"] is None


def _burst_run() -> TrafficRun:
    """Four requests submitted at once to an engine that runs two at a time: it schedules R1 and
    R2 at 0, R3 at 3 (when R2 ends) and R4 at 4 (when R1 ends)."""

    def gen(scheduled: float | None, times: list[float]) -> Generation:
        return Generation(5, len(times), 0.0, times, t_scheduled=scheduled)

    gens = [
        gen(0.0, [1.0, 2.0, 3.0, 4.0]),
        gen(0.0, [1.0, 2.0, 3.0]),
        gen(3.0, [4.0, 5.0, 6.0]),
        gen(4.0, [5.0, 6.0, 7.0]),
    ]
    return TrafficRun(gens, [0.0] * 4, {})


def test_burst_steady_state_is_where_the_batch_is_full() -> None:
    # The old rule (first completion 3 > last submission 0) had no steady state at all. Two run
    # from 0 to 6 (each ending request's slot is taken at once), then R4 drains alone.
    run = _burst_run()
    assert steady_state(run, 0.0) == pytest.approx((0.0, 6.0))
    # Without engine times a request runs from its first token: the batch is first full at 1
    # (R1, R2), dips while R3 waits for its first token, and is last full until 6.
    plain = TrafficRun(
        [Generation(5, g.tokens_out, 0.0, g.token_times) for g in run.generations], [0.0] * 4, {}
    )
    assert steady_state(plain, 0.0) == pytest.approx((1.0, 6.0))


def test_burst_steady_state_block_reports_j_per_token_by_hand() -> None:
    run = _burst_run()
    # 50 W throughout: 300 J over [0, 6]; tokens stamped in [0, 6]: 4 + 3 + 3 + 2 = 12.
    samples = [{"t_s": float(t), "energy_j": {"gpu": 50.0 * t}} for t in range(8)]

    class Component:
        domain, method = "gpu", "nvml_counter"

    block = steady_state_block(run, 0.0, samples, [Component()])
    assert block is not None
    assert "batch is full" in block["definition"]
    assert block["energy_j"] == pytest.approx(300.0)
    assert block["tokens_out"] == 12
    assert block["j_per_output_token"] == pytest.approx(25.0)
