"""Serving simulation: submit a workload's prompts as requests that arrive over time.

Used by every serving backend (``Backend.supports_traffic``) inside the measured window. Patterns
(suite.schema.json ``$defs/traffic``):

- ``poisson``: arrivals at exponential gaps of mean ``1/qps`` (``random.Random(seed)``), the first
  at the window start; with ``concurrency`` also set, at most that many requests are in flight
  (later arrivals wait on the client side; their ``t_start`` is when they really went out).
- ``constant``: arrivals at ``k/qps``, the same optional cap.
- ``concurrency``: ``concurrency`` requests in flight from the start, the next one submitted as
  soon as one completes, until all prompts are done (a closed loop, no arrival schedule).

Every request runs through ``backend.agenerate`` on the process-wide loop of
``harness.backends.aio``.
The steady state is the stretch where the system holds its full load: from the first completion
(the ramp-up is over) to the last submission (the drain starts). When every request is submitted
before the first one completes (a burst at t=0, ML.ENERGY's method), that stretch is empty; the
steady state is then ML.ENERGY's: the span where the engine's batch is full (The ML.ENERGY
Benchmark, arXiv:2505.06371, sec. on LLM measurement), from the first moment the number of running
requests reaches its maximum to the last moment it is at that maximum. A request runs from when
the engine scheduled it (``Generation.t_scheduled``) or, where the engine does not say, from its
first token, to its last token. ``steady_state_block`` measures it on its own, energy included,
from the power timeline, beside the whole window's J/token.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from dataclasses import dataclass, field
from typing import Any

from harness.backends import aio
from harness.backends.base import GREEDY, Backend, Generation, Prompt, Sampling

STEADY_STATE_DEFINITION = (
    "from the first request completion (ramp-up over) to the last request submission (drain "
    "starts): the stretch where the server holds its full offered load"
)
BATCH_FULL_DEFINITION = (
    "all requests were submitted before the first completed: the span where the engine's batch "
    "is full (ML.ENERGY), from the first to the last moment the number of running requests "
    "(engine-scheduled, else first token, to last token) is at its maximum"
)


@dataclass
class TrafficRun:
    """What one traffic run produced (times are ``time.perf_counter()`` values)."""

    generations: list[Generation]  # in submission order
    t_submit: list[float]  # when each request went out (after any client-side cap)
    info: dict[str, Any]  # the result's ``traffic`` block; steady_state_block fills steady_state
    t_arrival: list[float] = field(default_factory=list)  # scheduled arrival (t0 + offset)


def arrival_times(traffic: dict[str, Any], n: int) -> list[float] | None:
    """Arrival offsets (s from the window start) of ``n`` requests; None for ``concurrency``.

    ``poisson``: the first at 0, then exponential gaps with mean ``1/qps`` drawn from
    ``random.Random(seed)`` (reproducible for a seed). ``constant``: ``k/qps``."""
    pattern = traffic["pattern"]
    if pattern == "concurrency":
        return None
    qps = float(traffic["qps"])
    if not qps > 0:
        raise ValueError(f"traffic qps must be > 0, got {qps}")
    if pattern == "constant":
        return [k / qps for k in range(n)]
    if pattern != "poisson":
        raise ValueError(f"unknown traffic pattern {pattern!r}")
    rng = random.Random(int(traffic.get("seed", 0)))
    offsets, t = [], 0.0
    for k in range(n):
        if k:
            t += rng.expovariate(qps)
        offsets.append(t)
    return offsets


async def _wait_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Await every task; on the first failure cancel the rest and re-raise that failure itself
    (its class, e.g. BackendOOM, decides the harness's exit code)."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception()), None)
    if failed is not None:
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        raise failed.exception()  # type: ignore[misc]


async def _drive(
    backend: Backend,
    prompts: list[Prompt],
    traffic: dict[str, Any],
    max_new_tokens: int,
    exact: bool,
    sampling: Sampling,
    t0: float,
) -> TrafficRun:
    n = len(prompts)
    gens: list[Generation | None] = [None] * n
    t_submit = [0.0] * n
    in_flight = 0
    peak = 0
    failed = False

    async def one(i: int) -> None:
        nonlocal in_flight, peak, failed
        in_flight += 1
        peak = max(peak, in_flight)
        t_submit[i] = time.perf_counter()
        try:
            gens[i] = await backend.agenerate(prompts[i], max_new_tokens, exact, sampling)
        except BaseException:
            failed = True
            raise
        finally:
            in_flight -= 1

    offsets = arrival_times(traffic, n)
    cap = traffic.get("concurrency")
    arrivals: list[float] = []
    if offsets is None:
        # Closed loop: `cap` workers, each submitting the next prompt when its last one is done.
        order = iter(range(n))

        async def worker() -> None:
            for i in order:
                await one(i)

        await _wait_all([asyncio.create_task(worker()) for _ in range(min(int(cap), n))])
    else:
        sem = asyncio.Semaphore(int(cap)) if cap else None

        async def capped(i: int) -> None:
            if sem is None:
                await one(i)
                return
            async with sem:  # waits on the client side; t_submit is when it really goes out
                await one(i)

        tasks: list[asyncio.Task[None]] = []
        try:
            for i, offset in enumerate(offsets):
                arrivals.append(t0 + offset)
                delay = t0 + offset - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(capped(i)))
                if failed:
                    break  # a request failed: stop submitting, _wait_all re-raises it
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        await _wait_all(tasks)

    done = [g for g in gens if g is not None]
    if len(done) != n:
        raise RuntimeError(f"traffic run lost requests: {n - len(done)} of {n} have no result")
    run = TrafficRun(done, t_submit, {}, arrivals)
    run.info = _info(run, traffic, t0, peak)
    return run


def run_traffic(
    backend: Backend,
    prompts: list[Prompt],
    traffic: dict[str, Any],
    max_new_tokens: int,
    exact: bool,
    sampling: Sampling = GREEDY,
    t0: float | None = None,
) -> TrafficRun:
    """Submit ``prompts`` as ``traffic`` says and wait for all of them (call inside the measured
    window, ``t0`` being its start; default: now). Blocks the calling thread; the requests run
    on ``harness.backends.aio``'s loop. A failing request cancels the others and its exception
    propagates.
    """
    if not backend.supports_traffic:
        raise ValueError(f"the {backend.name} backend does not serve traffic")
    start = time.perf_counter() if t0 is None else t0
    return aio.run(_drive(backend, prompts, traffic, max_new_tokens, exact, sampling, start))


def serve_together(
    backend: Backend,
    prompts: list[Prompt],
    max_new_tokens: int,
    exact: bool,
    sampling: Sampling = GREEDY,
) -> list[Generation]:
    """Submit ``prompts`` at once through ``backend.agenerate`` and wait for all of them: a static
    batch as a serving engine sees one (it batches concurrent requests itself)."""

    async def gather() -> list[Generation]:
        return list(
            await asyncio.gather(
                *(backend.agenerate(p, max_new_tokens, exact, sampling) for p in prompts)
            )
        )

    return aio.run(gather())


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _info(run: TrafficRun, traffic: dict[str, Any], t0: float, peak: int) -> dict[str, Any]:
    """The result's traffic block (schemas/result.schema.json properties.traffic)."""
    gens, subs = run.generations, run.t_submit
    n = len(gens)
    t_end = max((g.t_end for g in gens), default=t0)
    duration = max(0.0, t_end - t0)
    if n >= 2 and max(subs) > min(subs):
        # Arrival rate: n requests span n-1 gaps (the first request comes at the window start).
        qps = (n - 1) / (max(subs) - min(subs))
    else:
        qps = n / duration if duration > 0 else 0.0
    busy = sum(max(0.0, g.t_end - s) for g, s in zip(gens, subs, strict=True))
    span = t_end - min(subs) if n else 0.0
    info: dict[str, Any] = {
        "pattern": traffic["pattern"],
        "qps_target": float(traffic["qps"]) if traffic.get("qps") is not None else None,
        "concurrency_target": (
            int(traffic["concurrency"]) if traffic.get("concurrency") is not None else None
        ),
        "seed": int(traffic.get("seed", 0)),
        "requests": n,
        "duration_s": duration,
        "qps_achieved": qps,
        "max_in_flight": peak,
        "mean_in_flight": busy / span if span > 0 else None,
        "steady_state": None,
    }
    if run.t_arrival:
        # Client-side wait behind the concurrency cap (0 without one): the server never saw it.
        waits = [s - a for s, a in zip(subs, run.t_arrival, strict=True)]
        info["client_wait_s_mean"] = sum(waits) / n
        info["client_wait_s_max"] = max(waits)
    return info


def batch_full_span(gens: list[Generation]) -> tuple[float, float, int] | None:
    """(start, end, running) on the generations' clock: the first and last moment the number of
    running requests is at its maximum ``running``; None when nothing ran for any time."""
    events: list[tuple[float, int]] = []
    for g in gens:
        begin = g.t_scheduled if g.t_scheduled is not None else g.t_first_token
        if begin is not None and g.t_end > begin:
            events += [(begin, 1), (g.t_end, -1)]
    if not events:
        return None
    events.sort()  # at equal times -1 sorts first: a request ending frees its slot first
    count, peak, first_full, last_full = 0, 0, 0.0, 0.0
    for t, delta in events:
        if delta < 0 and count == peak:
            last_full = t  # the batch leaves its maximum here (for now)
        count += delta
        if count > peak:
            peak, first_full = count, t
    return (first_full, last_full, peak) if last_full > first_full else None


def steady_state(run: TrafficRun, t0: float) -> tuple[float, float] | None:
    """(start_s, end_s) relative to ``t0``: first completion to last submission, or where that is
    empty (a burst), the span where the batch is full (``batch_full_span``); None when there are
    no requests or neither exists."""
    if not run.generations:
        return None
    start = min(g.t_end for g in run.generations) - t0
    end = max(run.t_submit) - t0
    if end > start:
        return (start, end)
    full = batch_full_span(run.generations)
    return None if full is None else (full[0] - t0, full[1] - t0)


def _steady_core(run: TrafficRun, t0: float) -> dict[str, Any] | None:
    bounds = steady_state(run, t0)
    if bounds is None:
        return None
    a, b = bounds[0] + t0, bounds[1] + t0
    duration = b - a
    tokens = sum(
        bisect.bisect_right(g.token_times, b) - bisect.bisect_left(g.token_times, a)
        for g in run.generations
    )
    busy = sum(
        _overlap(s, g.t_end, a, b) for g, s in zip(run.generations, run.t_submit, strict=True)
    )
    return {
        "start_s": bounds[0],
        "end_s": bounds[1],
        "duration_s": duration,
        "definition": (
            STEADY_STATE_DEFINITION
            if max(run.t_submit) > min(g.t_end for g in run.generations)
            else BATCH_FULL_DEFINITION
        ),
        "requests_completed": sum(1 for g in run.generations if a <= g.t_end <= b),
        "tokens_out": tokens,
        "throughput_out_tok_s": tokens / duration,
        "mean_in_flight": busy / duration,
    }


def _energy_at(samples: list[dict[str, Any]], domain: str, t: float) -> float | None:
    """Cumulative energy of ``domain`` at ``t`` (s from t0), linear between the two samples
    around it; None when ``t`` is outside the sampled span or a neighbour lacks the domain."""
    points = sorted(
        (s["t_s"], s["energy_j"][domain]) for s in samples if domain in (s.get("energy_j") or {})
    )
    times = [p[0] for p in points]
    k = bisect.bisect_left(times, t)
    if k < len(points) and times[k] == t:
        return float(points[k][1])
    if k == 0 or k == len(points):
        return None
    (ta, ea), (tb, eb) = points[k - 1], points[k]
    return ea + (eb - ea) * (t - ta) / (tb - ta)


def steady_state_block(
    run: TrafficRun,
    t0: float,
    samples: list[dict[str, Any]],
    components: list[Any],
) -> dict[str, Any] | None:
    """The steady-state block with energy, also stored in ``run.info["steady_state"]``.

    ``samples``: the window's timeline (``t_s`` from ``t0``, cumulative ``energy_j`` per domain);
    ``components``: the window's ``EnergyComponent``s (their methods name the energy's source).
    Energy is the sum over the domains the timeline sampled, each interpolated linearly at the
    window's start and end; None when no domain was sampled (codecarbon cannot be read
    mid-window), the energy method then says why. None when there is no steady state."""
    core = _steady_core(run, t0)
    run.info["steady_state"] = core
    if core is None:
        return None
    start, end = core["start_s"], core["end_s"]
    by_domain: dict[str, Any] = {c.domain: c for c in components}
    sampled = sorted({d for s in samples for d in (s.get("energy_j") or {})})
    energy: float | None = None
    used: list[str] = []
    for domain in sampled:
        e0, e1 = _energy_at(samples, domain, start), _energy_at(samples, domain, end)
        if e0 is None or e1 is None:
            continue
        energy = (energy or 0.0) + (e1 - e0)
        c = by_domain.get(domain)
        used.append(f"{domain}:{c.method if c is not None else 'unknown'}")
    missing = [d for d in by_domain if not any(u.startswith(f"{d}:") for u in used)]
    if energy is None:
        why = ", ".join(f"{d}:{by_domain[d].method}" for d in sorted(missing)) or "no meter"
        method = (
            f"none: no timeline energy samples cover the window ({why} not readable mid-window)"
        )
    else:
        method = "timeline interpolation of " + "+".join(used)
        if missing:
            method += "; not sampled mid-window, left out: " + ", ".join(
                f"{d}:{by_domain[d].method}" for d in sorted(missing)
            )
    core.update(
        energy_j=energy,
        energy_method=method,
        j_per_output_token=(
            energy / core["tokens_out"] if energy is not None and core["tokens_out"] else None
        ),
    )
    return core
