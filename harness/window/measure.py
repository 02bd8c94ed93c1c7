"""Measuring one experiment: warmup, one measured window, and everything derived from it.

Inside the window only the backend's batches run; the meters and the timeline sampler bracket it.
Everything else (prompt building, FLOPs counting, phase attribution, checks) happens outside.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, FlopsEstimate, Generation, Prompt, Sampling
from harness.contract.io import TIMELINES_DIR
from harness.meters.base import Meter
from harness.window.baseline import Baseline
from harness.window.metrics import compute_metrics, request_timings
from harness.window.scoring import quality_metrics, quality_warnings


@dataclass
class LoadedBackend:
    """A loaded backend and what the results need to say about it."""

    backend: Backend
    model_info: dict[str, Any]
    backend_info: dict[str, Any]
    flops_cache: dict[int, FlopsEstimate] = field(default_factory=dict)


@dataclass
class Session:
    """What stays the same for every experiment of one harness process."""

    loaded: LoadedBackend
    meters: list[Meter]
    measurement: dict[str, Any]  # the request's measurement block (defaults filled)
    io_dir: Path
    base_dir: Path | None = None
    telemetry: Any = None  # harness.hardware.telemetry.Telemetry, None without NVML GPUs
    baseline: Baseline | None = None
    gpu_names: list[str] = field(default_factory=list)  # GPUs the model runs on (for MFU/MBU)
    #: System CPU load (%) measured before the idle baseline (harness.window.host_load).
    load_before_pct: float | None = None
    warmed: set[str] = field(default_factory=set)  # warmup keys already run (harness.window.warmup)
    # Measured CPU peaks per (threads, precision) and why missing (harness.hardware.cpu_peaks).
    cpu_peaks: dict[tuple[int, str], tuple[Any, str]] = field(default_factory=dict)
    # Wall seconds this process spent per part (load, baseline, warmup, windows): the controller
    # prints where a suite's time went.
    spent_s: dict[str, float] = field(default_factory=dict)

    def spend(self, part: str, seconds: float) -> None:
        """Add ``seconds`` of wall time to ``part`` of this process's time."""
        self.spent_s[part] = self.spent_s.get(part, 0.0) + seconds


@dataclass
class Plan:
    """What one experiment sends, built before anything is measured."""

    workload: dict[str, Any]
    traffic: dict[str, Any] | None
    sampling: Sampling
    prompts: list[Prompt]
    batches: list[list[Prompt]]
    warm: list[list[Prompt]]  # what warmup runs
    max_new: int
    exact: bool


@dataclass
class Window:
    """What happened in the measured window (and the warmup before it)."""

    t0: float  # perf_counter at the window's start
    duration_s: float
    generations: list[tuple[int, Generation]]  # (batch index, generation); traffic: per request
    # (prompts, what the backend returned for them) as produced: batches may be reordered
    # (sorted_* batching), so completions are paired with their prompts here, not by position.
    produced: list[tuple[list[Prompt], list[Generation]]]
    samples: list[dict[str, Any]]
    timeline_errors: int
    components: list[Any]  # the meters' EnergyComponents
    warmup: Any  # WarmupReport
    processes: list[dict[str, Any]]  # GPU compute processes seen before the window
    served: Any = None  # traffic: harness.workloads.traffic's served requests
    outside_load: list[dict[str, Any]] = field(default_factory=list)  # busy GPUs not measured
    #: harness.window.host_load.CpuSnapshot just before and just after the window (or None)
    cpu: tuple[Any, Any] = (None, None)


@dataclass
class Measurement:
    """One experiment's measured blocks, in the order the result file holds them."""

    metrics: dict[str, Any]
    energy: dict[str, Any]
    flops: dict[str, Any]
    requests: list[dict[str, Any]]
    goodput: dict[str, Any]
    decoding: dict[str, Any]
    quality: dict[str, Any] | None
    traffic: dict[str, Any] | None
    timeline: dict[str, Any] | None
    warnings: list[dict[str, Any]]
    host_load: dict[str, Any] | None = None

    def fill(self, result: dict[str, Any]) -> None:
        """Set the result's blocks (``traffic`` only for experiments under traffic)."""
        for name, value in self.__dict__.items():
            if name != "traffic" or value is not None:
                result[name] = value


def measure_experiment(
    session: Session, config: dict[str, Any], result: dict[str, Any], emit: Any = None
) -> None:
    """Warm up, measure one window and fill ``result`` with metrics, energy, flops, requests,
    timeline and warnings. ``emit(event, **fields)`` reports progress (optional)."""
    emit = emit or (lambda *a, **k: None)
    plan = plan_experiment(session, config)
    window = run_window(session, config, plan, emit)
    derive(session, config, plan, window, result["experiment_id"], emit).fill(result)
    report = window.warmup
    result.setdefault("provenance", {}).setdefault("measurement", {})["warmup"] = {
        "runs": report.runs,
        "reused_group_warmup": report.reused,
        "per_shape": session.loaded.backend.warmup_per_shape,
        "latencies_s": [round(x, 4) for x in report.latencies_s],
    }


def plan_experiment(session: Session, config: dict[str, Any]) -> Plan:
    """Prompts, batches and sampling of one experiment."""
    from harness.workloads import WorkloadError, build_prompts
    from harness.workloads.batching import make_batches
    from harness.workloads.decoding import resolve as resolve_sampling

    backend = session.loaded.backend
    workload = config["workload"]
    traffic = config.get("traffic")
    if traffic and not backend.supports_traffic:
        # The controller refuses this at suite load; a third-party backend may still get here.
        raise WorkloadError(f"the {backend.name} backend does not serve traffic (traffic:)")
    sampling = resolve_sampling(config.get("decoding"))
    prompts = build_prompts(workload, backend, session.base_dir)
    size = config["batch_size"]
    max_new, exact = workload["output_tokens"], workload["exact_output"]
    batches = make_batches(prompts, size, max_new, config.get("batching"))
    # Full-size batches only: a short last batch is faster and would inflate the latency CV.
    # (Dynamic strategies vary the size by design: every batch then takes its turn.)
    strategy = (config.get("batching") or {}).get("strategy", "static")
    full = [b for b in batches if len(b) == size] or batches
    warm = full if strategy.endswith("static") else batches
    return Plan(workload, traffic, sampling, prompts, batches, warm, max_new, exact)


def run_window(session: Session, config: dict[str, Any], plan: Plan, emit: Any) -> Window:
    """Warm up, then run the plan inside the meters and the timeline sampler."""
    from harness.window.host_load import cpu_snapshot
    from harness.window.timeline import Timeline
    from harness.window.warmup import WarmupReport, warm_up, warmup_key

    backend, p = session.loaded.backend, plan
    w = config["warmup"]
    if p.traffic:
        from harness.workloads.traffic import run_traffic, serve_together

        # Warm the serving path itself (an engine may keep a separate one for static batches,
        # which must not be switched in inside the measured window).
        def one_warmup(i: int) -> list[Generation]:
            return serve_together(backend, p.warm[i % len(p.warm)], p.max_new, p.exact, p.sampling)
    else:

        def one_warmup(i: int) -> list[Generation]:
            return backend.generate(p.warm[i % len(p.warm)], p.max_new, p.exact, p.sampling)

    key = warmup_key(config, backend.warmup_per_shape)
    emit("warmup", runs=0 if key in session.warmed else w["runs"], reused=key in session.warmed)
    t_warm = time.perf_counter()
    if key in session.warmed:  # this group is already warm for this key: measure right away
        warmup = WarmupReport(runs=0, cv_threshold=w.get("cv_threshold"), reused=True)
    else:
        warmup = warm_up(
            one_warmup,
            runs=w["runs"],
            cv_threshold=w.get("cv_threshold"),
            cv_window=w.get("cv_window", 3),
            max_runs=w.get("max_runs", 20),
        )
        session.warmed.add(key)
    session.spend("warmup", time.perf_counter() - t_warm)

    processes = session.telemetry.processes() if session.telemetry is not None else []
    timeline = Timeline(session.meters, session.measurement["timeline_interval_s"],
                        session.telemetry)  # fmt: skip
    emit("measuring", batches=len(p.prompts) if p.traffic else len(p.batches))
    generations: list[tuple[int, Generation]] = []
    produced: list[tuple[list[Prompt], list[Generation]]] = []
    served = None
    cpu_before = cpu_snapshot()
    with ExitStack() as stack:
        for meter in session.meters:
            stack.enter_context(meter)
        t0 = time.perf_counter()
        timeline.start(t0)
        if p.traffic:
            served = run_traffic(backend, p.prompts, p.traffic, p.max_new, p.exact, p.sampling, t0)
            # Each request is its own "batch": its spans may overlap others' (phases handles it).
            generations.extend(enumerate(served.generations))
            produced.append((p.prompts, served.generations))  # in submission (= prompt) order
        else:
            for b, batch in enumerate(p.batches):
                out = backend.generate(batch, p.max_new, p.exact, p.sampling)
                generations.extend((b, g) for g in out)
                produced.append((batch, out))
        samples = timeline.stop()
        t1 = time.perf_counter()
    # Read right after the window (outside the measured region): load on GPUs not measured.
    outside = session.telemetry.outside_load() if session.telemetry is not None else []
    cpu_after = cpu_snapshot()
    session.spend("windows", t1 - t0)
    components = [c for m in session.meters for c in m.components]
    return Window(t0, t1 - t0, generations, produced, samples, timeline.errors, components,
                  warmup, processes, served, outside, (cpu_before, cpu_after))  # fmt: skip


def derive(
    session: Session,
    config: dict[str, Any],
    plan: Plan,
    window: Window,
    experiment_id: str,
    emit: Any,
) -> Measurement:
    """Everything the result says about a measured window, computed after it."""
    from harness.contract.scope import energy_scope, scope_metrics
    from harness.meters.carbon import co2_grams
    from harness.meters.chain import combine
    from harness.window.checks import WindowFacts, window_warnings
    from harness.window.goodput import goodput, limits_for
    from harness.window.host_load import (
        busy_host_warning,
        cpu_count,
        host_load,
        other_gpu_processes,
    )

    w = window
    energy = combine(w.components)
    co2_g, co2_info = co2_grams(energy["energy_total_j"], session.measurement)
    flops = _flops(session.loaded, w.generations)
    metrics = compute_metrics(w.generations, w.duration_s, energy, flops, co2_g)
    requests = request_timings(w.generations, w.t0)
    phases = _energy_breakdown(metrics, energy, session.baseline, w.samples, requests,
                               w.components, traffic=bool(plan.traffic))  # fmt: skip
    slo = (plan.traffic or {}).get("slo")
    met, good = goodput(requests, metrics["energy_total_j"], limits_for(slo))
    for r, ok in zip(requests, met, strict=True):
        r["slo_met"] = ok
    metrics.update(
        goodput_fraction=good["fraction"], j_per_good_output_token=good["j_per_good_output_token"]
    )
    # The measured part of the energy (the ranked figure) beside the whole system.
    scope = energy_scope(w.components)
    idle = None if session.baseline is None else session.baseline.power_w
    metrics.update(scope_metrics(scope, metrics["tokens_out"], w.duration_s, idle))
    peak = _utilisation(session, config, metrics, flops, w.generations, traffic=bool(plan.traffic))
    metrics.update(mfu=peak["mfu"], mbu=peak["mbu"])
    quality = _score(plan.workload, w.produced, emit)  # after the window: the meters are stopped
    metrics.update(quality_metrics(quality, metrics))
    traffic = None
    if w.served is not None:
        from harness.workloads.traffic import steady_state_block

        steady = steady_state_block(w.served, w.t0, w.samples, w.components)
        if steady is not None:
            steady["j_per_output_token_window"] = metrics["j_per_output_token"]
            metrics["j_per_output_token_steady_state"] = steady.get("j_per_output_token")
        traffic = {**w.served.info, "steady_state": steady}
    load = host_load(
        *w.cpu,
        cpus=cpu_count(),
        window_s=w.duration_s,
        load_before_pct=session.load_before_pct,
        gpu_others=other_gpu_processes(
            w.processes if session.telemetry is not None else None, [os.getpid()]
        ),
    )
    interval = session.measurement["timeline_interval_s"]
    timeline = _write_timeline(session, experiment_id, w.samples, interval, w.timeline_errors)
    facts = WindowFacts(
        metrics=metrics,
        energy=energy,
        components=w.components,
        phases=phases,
        baseline=session.baseline,
        samples=w.samples,
        meters=session.meters,
        processes=w.processes,
        outside_load=w.outside_load,
        own_pid=os.getpid(),
        warmup=w.warmup,
        tokens_out=[g.tokens_out for _, g in w.generations],
        max_new_tokens=plan.max_new,
        exact=plan.exact,
        timeline_errors=w.timeline_errors,
        model_on_gpu=bool(session.gpu_names),
        idle_baseline_s=session.measurement["idle_baseline_s"],
    )
    return Measurement(
        metrics=metrics,
        energy={
            "method": energy["method"],
            "is_estimate": energy["is_estimate"],
            "components": [c.to_dict() for c in w.components],
            "scope": scope.to_dict(),
            "co2": co2_info,
            "baseline": None if session.baseline is None else session.baseline.to_dict(),
            "phases": phases,
        },
        flops={
            "per_output_token": flops.per_token,
            "method": flops.method,
            "params": flops.params,
            "sequence_length": flops.sequence_length,
            "note": flops.note,
            "peak_flops_per_s": peak["peak_flops_per_s"],
            "peak_memory_bw_bytes_per_s": peak["peak_memory_bw_bytes_per_s"],
            "peak_source": peak["peak_source"],
            "devices": peak["devices"],
            "weight_bytes_per_step": peak["weight_bytes_per_step"],
            "weight_bytes_source": peak["weight_bytes_source"],
            "active_params": flops.active_params,
        },
        requests=requests,
        goodput=good,
        decoding=plan.sampling.to_dict(),
        quality=quality,
        traffic=traffic,
        timeline=timeline,
        warnings=window_warnings(facts)
        + [x for x in (busy_host_warning(load),) if x is not None]
        + quality_warnings(quality),
        host_load=load.to_dict(),
    )


def _score(
    workload: dict[str, Any],
    produced: list[tuple[list[Prompt], list[Generation]]],
    emit: Any,
) -> dict[str, Any] | None:
    """The result's ``quality`` block: HumanEval completions scored (harness.window.scoring); None
    for workloads that are not scored."""
    if workload["kind"] != "humaneval":
        return None
    from harness.window.scoring import error_block, score_window

    pairs: list[tuple[Prompt, Generation]] = []
    for batch, out in produced:
        if len(batch) != len(out):  # a backend bug; no completion can be matched to its task
            return error_block(
                f"the backend returned {len(out)} generations for {len(batch)} prompts"
            )
        pairs.extend(zip(batch, out, strict=True))
    emit("scoring", tasks=len(pairs))
    return score_window(pairs)


def _flops(loaded: LoadedBackend, generations: list[tuple[int, Generation]]) -> FlopsEstimate:
    """FLOPs per token at this window's mean sequence length (cached per length; computed outside
    the measured window)."""
    gens = [g for _, g in generations]
    seq = round(sum(g.tokens_in + g.tokens_out for g in gens) / len(gens))
    if seq not in loaded.flops_cache:
        loaded.flops_cache[seq] = loaded.backend.flops_per_token(max(seq, 1))
    return loaded.flops_cache[seq]


def _energy_breakdown(
    metrics: dict[str, Any],
    energy: dict[str, Any],
    baseline: Baseline | None,
    samples: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    components: list[Any],
    traffic: bool = False,
) -> dict[str, Any] | None:
    """Net energy (idle subtracted), prefill/decode attribution and per-request energy; fills the
    metrics' net, phase and per-request fields and the request rows' ``energy_j``, and returns the
    result's ``energy.phases`` block (None without energy).

    Static batches split phases by their spans; serving runs (``traffic``) by share of work, so
    that queue time is not counted as prefill (``harness.window.workshare``). Per-request energy
    is the work share in both cases."""
    from harness.window.phases import attribute, request_energies
    from harness.window.stats import summarize
    from harness.window.workshare import RequestSpan

    total = energy["energy_total_j"]
    domains = sorted({c.domain for c in components})
    duration, tokens_in, tokens_out = (
        metrics["duration_s"],
        metrics["tokens_in"],
        metrics["tokens_out"],
    )
    idle_w = None
    if baseline is not None and domains:
        # Only the domains measured in the window: gross and idle must cover the same hardware.
        idle_w = sum(baseline.power_w.get(d, 0.0) for d in domains)
    net = None if total is None or idle_w is None else total - idle_w * duration
    metrics.update(
        idle_power_w=idle_w,
        energy_net_j=net,
        j_per_output_token_net=None if net is None or not tokens_out else net / tokens_out,
        energy_idle_j=None if idle_w is None else idle_w * duration,
        energy_prefill_j=None,
        energy_decode_j=None,
        j_per_input_token_prefill=None,
        j_per_output_token_decode=None,
        j_per_request_attributed=None,
    )
    if total is None:
        return None
    spans = [
        RequestSpan(
            r["t_start_s"],
            r.get("t_scheduled_s"),
            r["t_first_token_s"],
            r["t_end_s"],
            r["tokens_in"],
            r["tokens_out"],
        )
        for r in requests
    ]
    domain_totals = {c.domain: c.energy_j for c in components}
    work = request_energies(samples, spans, duration, idle_w or 0.0, total, domains, domain_totals)
    for r, gross, net_j in zip(requests, work.request_gross_j, work.request_net_j, strict=True):
        r["energy_j"], r["energy_net_j"] = gross, net_j
    metrics["j_per_request_attributed"] = summarize(work.request_gross_j)
    batches: dict[int, list[float]] = {}
    for r in requests:
        b = batches.setdefault(r["batch"], [r["t_start_s"], r["t_first_token_s"], r["t_end_s"]])
        b[0] = min(b[0], r["t_start_s"])
        if r["t_first_token_s"] is not None:
            b[1] = r["t_first_token_s"] if b[1] is None else min(b[1], r["t_first_token_s"])
        b[2] = max(b[2], r["t_end_s"])
    batch_spans = [(s, f if f is not None else e, e) for s, f, e in batches.values()]
    phases = attribute(
        samples,
        batch_spans,
        duration,
        idle_w or 0.0,
        total,
        domains,
        # Per-domain totals let closure check each sampled series against its own meter.
        domain_totals_j=domain_totals,
        requests=spans if traffic else None,
    )
    metrics.update(
        energy_prefill_j=phases.prefill_j,
        energy_decode_j=phases.decode_j,
        j_per_input_token_prefill=phases.prefill_j / tokens_in if tokens_in else None,
        j_per_output_token_decode=phases.decode_j / tokens_out if tokens_out else None,
    )
    return phases.to_dict()


def _utilisation(
    session: Session,
    config: dict[str, Any],
    metrics: dict[str, Any],
    flops: FlopsEstimate,
    generations: list[tuple[int, Generation]],
    traffic: bool = False,
) -> dict[str, Any]:
    """MFU and MBU against the GPU peak table, or on the CPU against peaks measured on this host
    (harness.hardware.cpu_peaks; labelled measured).

    Under traffic the engine's step count is unknown (it batches requests as they come), so MBU,
    which needs it, is left out rather than guessed."""
    from harness.hardware.peaks import BYTES_PER_ELEMENT, DTYPES, NO_PEAK, utilisation
    from harness.models.weight_bytes import WeightBytes, stored_weight_bytes

    steps: dict[int, int] = {}
    for b, g in generations:
        steps[b] = max(steps.get(b, 0), g.tokens_out)
    engine_args = session.loaded.model_info.get("engine_args") or {}
    threads = session.loaded.backend.threads
    on_cpu = str(session.loaded.model_info.get("device") or "").startswith("cpu")
    if on_cpu and not session.gpu_names and threads is not None:
        from harness.hardware.cpu_peaks import cpu_peaks, cpu_utilisation

        key = (threads.count, config["precision"])
        if key not in session.cpu_peaks:
            t0 = time.perf_counter()
            session.cpu_peaks[key] = cpu_peaks(threads.count, config["precision"])
            session.spend("probe", time.perf_counter() - t0)
        peaks, why = session.cpu_peaks[key]
        if peaks is None:
            return {
                "mfu": None,
                "mbu": None,
                "peak_flops_per_s": None,
                "peak_memory_bw_bytes_per_s": None,
                "peak_source": f"{NO_PEAK} ({why})",
                "devices": 0,
                "weight_bytes_per_step": None,
                "weight_bytes_source": None,
            }
        # Weight bytes: the stored bytes (GGUF tensor types, quantised methods), else the
        # precision's width only where weights are held in it (transformers dequantises GGUF);
        # otherwise MBU stays null rather than several times too high.
        weights = stored_weight_bytes(session.loaded.model_info, config, flops)
        width = engine_args.get("weight_bytes_per_param")
        if width is None and session.loaded.backend_info.get("name") == "pytorch":
            width = BYTES_PER_ELEMENT.get(DTYPES.get(config["precision"].lower()) or "")
        if weights is None and width and flops.params is not None:
            source = f"{flops.params} parameters x {width:g} B ({config['precision']} width)"
            weights = WeightBytes(flops.params * width, source)
        return cpu_utilisation(
            peaks,
            flops.per_token,
            metrics["tokens_in"],
            metrics["tokens_out"],
            metrics["duration_s"],
            weights,
            None if traffic else sum(steps.values()),
        )
    return utilisation(
        flops_per_token=flops.per_token,
        tokens_in=metrics["tokens_in"],
        tokens_out=metrics["tokens_out"],
        duration_s=metrics["duration_s"],
        params=flops.active_params or flops.params,
        precision=config["precision"],
        decode_steps=None if traffic else sum(steps.values()),
        weight_bytes_per_param=engine_args.get("weight_bytes_per_param"),
        weight_bytes=stored_weight_bytes(session.loaded.model_info, config, flops),
        devices=session.gpu_names,
    )


def _write_timeline(
    session: Session,
    experiment_id: str,
    samples: list[dict[str, Any]],
    interval: float,
    errors: int,
) -> dict[str, Any] | None:
    """Write the samples as JSON Lines beside the result; the controller stores the file."""
    if not samples:
        return None
    from harness.contract.timeline_file import write_timeline

    write_timeline(session.io_dir / TIMELINES_DIR / f"{experiment_id}.jsonl", samples)
    fields = sorted({k for s in samples for k in s})
    return {
        "file": "timeline.jsonl",
        "interval_s": interval,
        "samples": len(samples),
        "fields": fields,
        "errors": errors,
    }
