"""Measurement warnings of one window: ``{"code", "message"}`` dicts for ``result.warnings``.

Each check is a pure function of data the harness already has (metrics, meters, timeline samples,
GPU process lists, the phase split, the baseline, the warmup report) and returns a warning or None.
Messages are one line: what happened, then what to do. ``window_warnings`` runs them all in a fixed
order. Codes: see ``CODES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.hardware.gpu.base import BENIGN_CLOCK_EVENTS, CLOCK_EVENT_REASONS

#: Every code a window can be warned about, in the order ``window_warnings`` emits them.
CODES = (
    "estimate_used",
    "no_energy",
    "window_too_short",
    "exact_output_violated",
    "throttling",
    "other_gpu_processes",
    "other_gpu_load",
    "power_limit_changed",
    "clocks_changed",
    "warmup_not_converged",
    "closure_failed",
    "negative_net_energy",
    "no_baseline",
    "timeline_errors",
)

#: A window shorter than this is too short whatever the meters (start/stop overheads, NVML's
#: ~100 ms counter updates and power averaging).
MIN_WINDOW_S = 1.0
#: ... and shorter than this many update periods of its slowest meter.
MIN_UPDATE_PERIODS = 10

#: Clock event ("throttle") reason bits -> labels, from the device layer's one table.
THROTTLE_REASONS = {r.bit: r.label for r in CLOCK_EVENT_REASONS}
#: Not throttling: the GPU is idle (between batches), or clocks were set on purpose.
BENIGN_THROTTLE = BENIGN_CLOCK_EVENTS

#: Clock fields of a GPU entry that are settings (fixed unless someone changes them), compared
#: between the window's first and last sample. Current clocks (``sm_clock_mhz``) vary by design.
CLOCK_FIELDS = (
    "app_sm_clock_mhz",
    "app_mem_clock_mhz",
    "max_sm_clock_mhz",
    "max_mem_clock_mhz",
    "locked_sm_clock_mhz",
    "locked_mem_clock_mhz",
)
#: Power limits closer than this (W) are equal (NVML reports milliwatts).
POWER_LIMIT_TOLERANCE_W = 0.5
#: ``other_j`` (the gaps between batches, near idle by nature) is reported negative only beyond
#: this share of the window total: there a baseline a little above the gaps' power is noise.
OTHER_NEGATIVE_SHARE = 0.01

Warning = dict[str, str]


def warning(code: str, message: str) -> Warning:
    """A warning dict; the message is forced onto one line."""
    return {"code": code, "message": " ".join(message.split())}


def _get(obj: Any, name: str) -> Any:
    """Field of a dataclass or a dict (phases and baselines come as either)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


# -- energy and the window ---------------------------------------------------------------------
def estimate_used(energy: Mapping[str, Any], components: Iterable[Any]) -> Warning | None:
    """Some energy is an estimate (``energy`` is ``harness.meters.chain.combine``'s output)."""
    if not energy.get("is_estimate"):
        return None
    components = list(components)
    methods = sorted({c.method for c in components if c.is_estimate})
    measured = [c.domain for c in components if not c.is_estimate]
    if measured:  # mixed: the measured part is ranked, the estimate only shown beside it
        estimated = [c.domain for c in components if c.is_estimate]
        return warning(
            "estimate_used",
            f"{', '.join(estimated)} energy is an estimate ({', '.join(methods)}): the ranked "
            f"figure is the measured {', '.join(measured)} part alone; the whole-system figure "
            "includes the estimate (use a machine with readable RAPL to measure it)",
        )
    return warning(
        "estimate_used",
        f"energy includes an estimate ({', '.join(methods) or 'unknown method'}), not a "
        "measurement: it is not comparable with measured results (use a machine with RAPL/NVML)",
    )


def no_energy(energy: Mapping[str, Any]) -> Warning | None:
    """No meter measured anything."""
    if energy.get("energy_total_j") is not None:
        return None
    return warning(
        "no_energy",
        "no meter measured any energy domain: only speed metrics are valid "
        "(check provenance.measurement.skipped for why each meter was unavailable)",
    )


def window_too_short(
    duration_s: float, update_periods_s: Mapping[str, float | None] | None = None
) -> Warning | None:
    """The window is shorter than ``MIN_WINDOW_S`` or than ``MIN_UPDATE_PERIODS`` update periods
    of its slowest meter (``update_periods_s``: meter name -> ``Meter.update_period_s``)."""
    periods = {k: v for k, v in (update_periods_s or {}).items() if v is not None and v > 0}
    slowest = max(periods, key=lambda k: periods[k]) if periods else None
    by_meter = MIN_UPDATE_PERIODS * periods[slowest] if slowest is not None else 0.0
    needed = max(MIN_WINDOW_S, by_meter)
    if duration_s >= needed:
        return None
    if slowest is not None and by_meter >= MIN_WINDOW_S:
        why = f"{MIN_UPDATE_PERIODS} x the {periods[slowest]:g} s update period of meter {slowest}"
    else:
        why = "the minimum for a reliable energy reading"
    return warning(
        "window_too_short",
        f"measured window {duration_s:.3f} s is shorter than {needed:g} s ({why}): energy per "
        "token is unreliable; add prompts or output tokens",
    )


def exact_output_violated(
    tokens_out: Iterable[int], max_new_tokens: int, exact: bool
) -> Warning | None:
    """With ``exact_output``, some request produced a different number of tokens."""
    if not exact:
        return None
    wrong = [n for n in tokens_out if n != max_new_tokens]
    if not wrong:
        return None
    got = str(min(wrong)) if min(wrong) == max(wrong) else f"{min(wrong)}..{max(wrong)}"
    return warning(
        "exact_output_violated",
        f"{len(wrong)} request(s) did not produce exactly {max_new_tokens} tokens (got {got}): "
        "the backend ignored the fixed output length; per-token figures use the real counts",
    )


# -- GPU state from the timeline ---------------------------------------------------------------
def _reason_names(mask: int) -> list[str]:
    names = []
    for bit in range(64):
        flag = 1 << bit
        if mask & flag and not flag & BENIGN_THROTTLE:
            names.append(THROTTLE_REASONS.get(flag, f"0x{flag:x}"))
    return names


def throttling(samples: Iterable[Mapping[str, Any]]) -> Warning | None:
    """Any GPU had a clock event reason other than idle / applications clocks in the window."""
    counts: dict[str, dict[str, int]] = {}  # gpu id -> reason -> samples
    seen: dict[str, int] = {}  # gpu id -> samples with a reading
    for sample in samples:
        for gpu in sample.get("gpus") or []:
            mask = gpu.get("throttle_reasons")
            if mask is None:
                continue
            gid = str(gpu.get("id"))
            seen[gid] = seen.get(gid, 0) + 1
            for name in _reason_names(int(mask)):
                per = counts.setdefault(gid, {})
                per[name] = per.get(name, 0) + 1
    if not counts:
        return None
    parts = []
    for gid in sorted(counts):
        reasons = ", ".join(f"{n} in {c}/{seen[gid]} samples" for n, c in counts[gid].items())
        parts.append(f"GPU {gid}: {reasons}")
    return warning(
        "throttling",
        f"GPU clocks were held back during the window ({'; '.join(parts)}): speed and energy "
        "reflect throttled clocks; check cooling and power limits, or add a gap between runs",
    )


def _edge_gpus(
    samples: list[Mapping[str, Any]],
) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """GPU entries by id of the first and the last sample that have any."""
    with_gpus = [s["gpus"] for s in samples if s.get("gpus")]
    if not with_gpus:
        return {}, {}

    def by_id(gpus: list[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        return {str(g.get("id")): g for g in gpus}

    return by_id(with_gpus[0]), by_id(with_gpus[-1])


def power_limit_changed(samples: list[Mapping[str, Any]]) -> Warning | None:
    """A GPU's power limit differs between the window's first and last sample."""
    first, last = _edge_gpus(samples)
    changes = []
    for gid in sorted(first.keys() & last.keys()):
        a, b = first[gid].get("power_limit_w"), last[gid].get("power_limit_w")
        if a is not None and b is not None and abs(a - b) > POWER_LIMIT_TOLERANCE_W:
            changes.append(f"GPU {gid}: {a:g} W -> {b:g} W")
    if not changes:
        return None
    return warning(
        "power_limit_changed",
        f"the GPU power limit changed during the window ({'; '.join(changes)}): the window mixes "
        "two configurations; keep power limits fixed while benchmarking and re-run",
    )


def clocks_changed(samples: list[Mapping[str, Any]]) -> Warning | None:
    """A GPU's clock settings (``CLOCK_FIELDS``: application, maximum or locked clocks) differ
    between the window's first and last sample. Fields absent from the entries are not compared."""
    first, last = _edge_gpus(samples)
    changes = []
    for gid in sorted(first.keys() & last.keys()):
        for name in CLOCK_FIELDS:
            a, b = first[gid].get(name), last[gid].get(name)
            if a is not None and b is not None and a != b:
                changes.append(f"GPU {gid} {name} {a} -> {b}")
    if not changes:
        return None
    return warning(
        "clocks_changed",
        f"GPU clock settings changed during the window ({'; '.join(changes)}): the window mixes "
        "two configurations; keep clocks fixed while benchmarking and re-run",
    )


def other_gpu_processes(
    processes: Iterable[Mapping[str, Any]],
    own_pid: int | Iterable[int],
    model_on_gpu: bool | None = None,
) -> Warning | None:
    """Processes other than ours computing on the measured GPUs (they add to its energy).

    ``processes``: ``Telemetry.processes()`` entries (``id``, ``pid``, optional ``ours``,
    ``used_memory_bytes``); a process is ours when ``ours`` is true or its pid is in ``own_pid``.
    When none of them is ours, pids may not be comparable (a container with its own PID namespace
    sees host pids from NVML): then this warns only if the model is known not to run on the GPU
    (``model_on_gpu`` False: every process there is someone else's); otherwise it cannot tell.
    """
    own = {own_pid} if isinstance(own_pid, int) else set(own_pid)
    procs = list(processes)
    ours = [p for p in procs if p.get("ours") or p.get("pid") in own]
    others = [p for p in procs if not (p.get("ours") or p.get("pid") in own)]
    if not others or (not ours and model_on_gpu is not False):
        return None
    per_gpu: dict[str, list[str]] = {}
    for p in others:
        used = p.get("used_memory_bytes")
        label = f"pid {p.get('pid')}" + (f" ({used / 2**20:.0f} MiB)" if used else "")
        per_gpu.setdefault(str(p.get("id", "?")), []).append(label)
    where = "; ".join(f"GPU {gid}: {', '.join(v)}" for gid, v in sorted(per_gpu.items()))
    return warning(
        "other_gpu_processes",
        f"other processes were computing on the measured GPU(s) ({where}): their energy is in "
        "this window; stop them or use a GPU of its own",
    )


def other_gpu_load(outside: Iterable[Mapping[str, Any]]) -> Warning | None:
    """GPUs outside the experiment's set were busy (``Telemetry.outside_load()`` entries): not in
    the figure, but they share the machine's power, cooling and (for the CPU) host."""
    busy = list(outside)
    if not busy:
        return None

    def what(g: Mapping[str, Any]) -> str:
        parts = []
        if g.get("util_gpu_pct") is not None:
            parts.append(f"{g['util_gpu_pct']:.0f}% busy")
        if g.get("power_w") is not None:
            parts.append(f"{g['power_w']:.0f} W")
        if g.get("processes"):
            parts.append(f"{g['processes']} process(es)")
        return f"GPU {g.get('id', '?')} ({', '.join(parts) or 'in use'})"

    return warning(
        "other_gpu_load",
        f"GPU(s) outside the experiment's set were in use during the window "
        f"({'; '.join(what(g) for g in busy)}): they are not measured, but they load the same "
        "host and cooling; run on an otherwise idle machine for comparable numbers",
    )


# -- derived figures ---------------------------------------------------------------------------
def closure_failed(phases: Any) -> Warning | None:
    """The phase split does not add up to the meters' total (``Phases`` or its dict)."""
    if phases is None:
        return None
    error = _get(phases, "closure_rel_error")
    ok = _get(phases, "closure_ok")
    if ok is None:
        ok = error is not None and error <= 0.01
    if ok:
        return None
    parts = sum(_get(phases, k) or 0.0 for k in ("prefill_j", "decode_j", "other_j", "idle_j"))
    total = _get(phases, "total_j")
    return warning(
        "closure_failed",
        f"prefill + decode + other + idle = {parts:.4g} J but the meters measured "
        f"{total:.4g} J ({error:.1%} apart, over 1%): the timeline disagrees with the meters, so "
        "the phase split is unreliable; check the timeline file for gaps or counter jumps",
    )


def negative_net_energy(
    phases: Any = None, metrics: Mapping[str, Any] | None = None
) -> Warning | None:
    """A net (idle-subtracted) energy is negative: the baseline exceeds the window's power."""
    found = []
    metrics = metrics or {}
    net = metrics.get("energy_net_j")
    if net is not None and net < 0:
        found.append(f"window {net:.4g} J")
    measured_net = metrics.get("energy_measured_net_j")  # the ranked (measured) part's net
    if measured_net is not None and measured_net < 0 and measured_net != net:
        found.append(f"measured part {measured_net:.4g} J")
    if phases is not None:
        for key in ("prefill_j", "decode_j"):
            value = _get(phases, key)
            if value is not None and value < 0:
                found.append(f"{key.removesuffix('_j')} {value:.4g} J")
        other, total = _get(phases, "other_j"), _get(phases, "total_j") or 0.0
        if other is not None and other < -OTHER_NEGATIVE_SHARE * abs(total):
            found.append(f"other {other:.4g} J")
    if not found:
        return None
    idle, mean = metrics.get("idle_power_w"), metrics.get("avg_power_w")
    powers = ""
    if idle is not None and mean is not None:
        powers = f" (idle {idle:.4g} W vs window mean {mean:.4g} W)"
    return warning(
        "negative_net_energy",
        f"net energy is negative ({', '.join(found)}): the idle baseline is above the power "
        f"measured{powers}; re-measure the baseline (baseline_cache_s: 0) on an otherwise idle "
        "machine",
    )


def no_baseline(baseline: Any, idle_baseline_s: float | None = None) -> Warning | None:
    """No idle baseline: net energies and phases are gross (nothing subtracted)."""
    if baseline is not None:
        return None
    if idle_baseline_s == 0:
        why, fix = "the idle baseline is disabled (idle_baseline_s: 0)", "set idle_baseline_s > 0"
    else:
        why, fix = "no idle baseline was measured", "see the harness log for why"
    return warning(
        "no_baseline",
        f"{why}: net energy and the phase split include idle power (nothing subtracted); {fix}",
    )


def warmup_not_converged(report: Any) -> Warning | None:
    """The CV-based warmup hit ``max_runs`` before batch latencies settled."""
    if report is None or _get(report, "converged") is not False:
        return None
    cv, threshold = _get(report, "final_cv"), _get(report, "cv_threshold")
    window, runs = _get(report, "cv_window"), _get(report, "runs")
    cv_text = "unknown" if cv is None else f"{cv:.3g}"
    limit = "" if threshold is None else f" (threshold {threshold:g})"
    return warning(
        "warmup_not_converged",
        f"warmup did not settle: the CV of the last {window} batch latencies was {cv_text}"
        f"{limit} after {runs} batches; the window may include warm-up effects or interference: "
        "raise warmup.max_runs or look for other load",
    )


def timeline_read_errors(errors: int) -> Warning | None:
    """Some timeline samples failed (the phase split interpolates over the gaps)."""
    if not errors:
        return None
    return warning(
        "timeline_errors",
        f"{errors} timeline read(s) failed during the window: the phase split interpolates over "
        "the gaps; see the harness log for the first error",
    )


@dataclass(frozen=True)
class WindowFacts:
    """What the checks of one window look at (see each check for how it uses its fields)."""

    metrics: Mapping[str, Any]
    energy: Mapping[str, Any]  # combine(): energy_total_j, method, is_estimate
    components: Iterable[Any] = ()
    phases: Any = None  # the result's energy.phases block
    baseline: Any = None
    samples: list[Mapping[str, Any]] = field(default_factory=list)  # timeline samples
    meters: Iterable[Any] = ()
    processes: Iterable[Mapping[str, Any]] = ()  # GPU compute processes at the window's start
    # Busy GPUs outside the experiment's set, read right after the window (Telemetry.outside_load)
    outside_load: Iterable[Mapping[str, Any]] = ()
    own_pid: int | Iterable[int] = ()
    warmup: Any = None  # the WarmupReport
    tokens_out: Iterable[int] = ()  # per request
    max_new_tokens: int = 0
    exact: bool = False
    timeline_errors: int = 0
    idle_baseline_s: float | None = None
    model_on_gpu: bool | None = None


def window_warnings(facts: WindowFacts) -> list[Warning]:
    """All warnings of one window, in ``CODES`` order."""
    f = facts
    measured = f.energy.get("energy_total_j") is not None
    periods = {m.name: getattr(m, "update_period_s", None) for m in f.meters}
    found = [
        estimate_used(f.energy, f.components),
        no_energy(f.energy),
        window_too_short(f.metrics["duration_s"], periods),
        exact_output_violated(f.tokens_out, f.max_new_tokens, f.exact),
        throttling(f.samples),
        other_gpu_processes(f.processes, f.own_pid, f.model_on_gpu),
        other_gpu_load(f.outside_load),
        power_limit_changed(f.samples),
        clocks_changed(f.samples),
        warmup_not_converged(f.warmup),
        closure_failed(f.phases),
        negative_net_energy(f.phases, f.metrics),
        no_baseline(f.baseline, f.idle_baseline_s) if measured else None,
        timeline_read_errors(f.timeline_errors),
    ]
    return [w for w in found if w is not None]
