"""``lembench advise``: the configuration to use, from the user's own measurements.

Experiments are grouped by model and request shape (J/token depends on both: a smaller model is a
different product, a longer answer a different job). Within a group the candidates are the
experiments with measured energy, or, only when none has measured energy, the estimated ones
(labelled so); estimates are never ranked with measurements. The recommendation is the lowest mean
J/output token among candidates meeting the scenario's latency targets. Every statement carries the
experiment ids it rests on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lembench.advice import suggest
from lembench.advice.compare import change, cite, fmt_j, fmt_pct, fmt_s, key
from lembench.advice.data import Experiment, Loaded
from lembench.advice.levers import LeverReport, analyse
from lembench.advice.pitfalls import Pitfall, detect
from lembench.advice.scenarios import Check, Scenario, check
from lembench.advice.suggest import Suggestion


@dataclass(frozen=True)
class Statement:
    """One sentence of advice and the experiments it rests on."""

    text: str
    ids: tuple[str, ...] = ()

    def line(self, short: dict[str, str]) -> str:
        return f"{self.text} {cite(self.ids, short)}" if self.ids else self.text


@dataclass
class Group:
    """The advice for one model and request shape."""

    model: str
    workload: str
    basis: str  # measured | estimate
    ranked: list[Experiment]  # candidates, lowest J/token first
    set_aside: list[Experiment]  # estimates left out because measured energy exists
    checks: dict[str, Check]
    recommended: Experiment | None = None
    closest: Experiment | None = None
    statements: list[Statement] = field(default_factory=list)
    suggestion: Suggestion | None = None


@dataclass
class Advice:
    """Everything ``lembench advise`` prints."""

    loaded: Loaded
    scenario: Scenario
    groups: list[Group]
    levers: list[LeverReport]
    pitfalls: list[Pitfall]

    @property
    def short(self) -> dict[str, str]:
        return self.loaded.short


def advise(loaded: Loaded, scn: Scenario) -> Advice:
    """Recommendations per group, lever effects and pitfalls for the loaded experiments."""
    by_group: dict[tuple[str, str], list[Experiment]] = defaultdict(list)
    for e in loaded.experiments:
        by_group[(e.model, e.workload)].append(e)
    groups = [_group(model, workload, exps, scn) for (model, workload), exps in by_group.items()]
    groups.sort(key=lambda g: (g.model, g.workload))
    anchor = next((g.recommended for g in groups if g.recommended), None)
    latency = tuple(t.metric for t in scn.targets) or ("e2e_p99_s",)
    levers = analyse(loaded.experiments, anchor, latency)
    return Advice(loaded, scn, groups, levers, detect(loaded.experiments, scn))


def _j(e: Experiment) -> float:
    return e.mean("j_per_output_token") or 0.0


def _group(model: str, workload: str, exps: list[Experiment], scn: Scenario) -> Group:
    measured = [e for e in exps if not e.is_estimate]
    candidates = measured or exps
    set_aside = [e for e in exps if e.is_estimate] if measured else []
    ranked = sorted(candidates, key=lambda e: (_j(e), e.experiment_id))
    checks = {e.experiment_id: check(e, scn) for e in ranked}
    g = Group(model, workload, "measured" if measured else "estimate", ranked, set_aside, checks)
    meeting = [e for e in ranked if checks[e.experiment_id].meets]
    est = "estimated " if g.basis == "estimate" else ""
    if meeting:
        best = g.recommended = meeting[0]
        g.statements.append(
            Statement(
                _recommend_text(best, checks[best.experiment_id], scn, est), (best.experiment_id,)
            )
        )
        if len(meeting) > 1:
            g.statements.append(_runner_up(best, meeting[1], est))
        cheaper = [e for e in ranked if _j(e) < _j(best)]
        if cheaper:
            g.statements.append(_cheaper_but_slow(cheaper[0], best, checks, est))
    else:
        _nothing_meets(g, scn)
    unknown = [e for e in ranked if checks[e.experiment_id].meets is None]
    if unknown:
        g.statements.append(
            Statement(
                f"{len(unknown)} experiment{'s' * (len(unknown) != 1)} recorded no "
                f"{'/'.join(t.label for t in scn.targets)}, so the targets cannot be checked: "
                "not recommended",
                tuple(e.experiment_id for e in unknown),
            )
        )
    if g.basis == "estimate":
        g.statements.append(
            Statement(
                "every figure in this group is an estimate (energy modelled, not metered): the "
                "ranking compares estimates with estimates only",
                tuple(e.experiment_id for e in ranked),
            )
        )
    if set_aside:
        g.statements.append(
            Statement(
                f"{len(set_aside)} experiment{'s' * (len(set_aside) != 1)} with estimated energy "
                "set aside: measured energy exists for this model and workload, and estimates are "
                "never ranked with measurements",
                tuple(e.experiment_id for e in set_aside),
            )
        )
    methods = sorted({e.energy_method or "?" for e in ranked})
    if len(methods) > 1:
        g.statements.append(
            Statement(
                f"the ranking mixes energy methods ({', '.join(methods)}): they meter different "
                "parts of the machine, so compare across them with care",
                tuple(e.experiment_id for e in ranked),
            )
        )
    hardware = sorted({e.hardware or "?" for e in ranked})
    if len(hardware) > 1:
        g.statements.append(
            Statement(
                f"the ranking spans hardware: {'; '.join(hardware)}",
                tuple(e.experiment_id for e in ranked),
            )
        )
    return g


def _interval(e: Experiment) -> str:
    s = e.stat("j_per_output_token")
    if s is None or s.low is None or s.high is None:
        return f"{e.n_ok} run{'s' * (e.n_ok != 1)}, no interval"
    return f"95% CI [{s.low:.3g}, {s.high:.3g}] J, {s.n} runs"


def _recommend_text(best: Experiment, c: Check, scn: Scenario, est: str) -> str:
    where = f" on {best.hardware}" if best.hardware else ""
    tput = best.mean("throughput_out_tok_s")
    lat = "; ".join(f"{t.label} {fmt_s(v)} <= {fmt_s(t.limit_s)}" for t, v in c.results)
    goal = f"meets the {scn.name} targets ({lat})" if scn.targets else "no latency target"
    flags = f"; flagged {', '.join(best.stability)}" if best.stability else ""
    return (
        f"recommended: {best.label()}{where}: {est}{fmt_j(_j(best))}/output token "
        f"({_interval(best)}{flags}), {tput:.3g} tok/s; {goal}"
        if tput is not None
        else f"recommended: {best.label()}{where}: {est}{fmt_j(_j(best))}/output token "
        f"({_interval(best)}{flags}); {goal}"
    )


def _runner_up(best: Experiment, second: Experiment, est: str) -> Statement:
    c = change(best, second, "j_per_output_token")
    ids = (best.experiment_id, second.experiment_id)
    if c is None:
        return Statement(f"next: {second.label()}", ids)
    if c.noise == "within":
        text = (
            f"{second.label()} is within noise of it ({est}{fmt_j(c.after)}, 95% intervals "
            "overlap): either will do"
        )
    elif c.noise == "unknown":
        text = (
            f"next best: {second.label()} at {est}{fmt_j(c.after)} ({fmt_pct(c)}); with fewer "
            "than 2 runs each the difference may be noise"
        )
    else:
        text = f"next best: {second.label()} uses {fmt_pct(c)} energy per token ({fmt_j(c.after)})"
    return Statement(text, ids)


def _cheaper_but_slow(
    e: Experiment, best: Experiment, checks: dict[str, Check], est: str
) -> Statement:
    c = change(best, e, "j_per_output_token")
    missed = checks[e.experiment_id].missed()
    why = "; ".join(
        f"{t.label} {'not recorded' if v is None else fmt_s(v)} > {fmt_s(t.limit_s)}"
        for t, v in missed
    )
    pct = f" ({fmt_pct(c)}, {est}{fmt_j(c.after)})" if c is not None else ""
    return Statement(
        f"{e.label()} uses less energy per token{pct} but misses the latency target ({why})",
        (e.experiment_id, best.experiment_id),
    )


def _nothing_meets(g: Group, scn: Scenario) -> None:
    known = [e for e in g.ranked if g.checks[e.experiment_id].meets is False]
    if not known:
        return
    closest = g.closest = min(known, key=lambda e: (g.checks[e.experiment_id].worst_ratio, _j(e)))
    missed = g.checks[closest.experiment_id].missed()
    why = "; ".join(
        f"{t.label} {'not recorded' if v is None else fmt_s(v)} vs {fmt_s(t.limit_s)}"
        + ("" if v is None else f" (x{v / t.limit_s:.3g} the limit)")
        for t, v in missed
    )
    targets = ", ".join(f"{t.label} <= {fmt_s(t.limit_s)}" for t in scn.targets)
    g.statements.append(
        Statement(
            f"no experiment meets the {scn.name} targets ({targets}); closest: "
            f"{closest.label()}: {why}",
            (closest.experiment_id,),
        )
    )
    g.suggestion = _latency_run(closest, g.ranked)


def _latency_run(e: Experiment, exps: list[Experiment]) -> Suggestion:
    """Smaller batches lower per-request latency; at batch 1 only a faster engine, precision or
    machine can."""
    measured = {x.batch_size for x in exps if key(x, ["batch_size"]) == key(e, ["batch_size"])}
    smaller = [b for b in (1, 2, 4, 8, 16, 32, 64) if b < e.batch_size and b not in measured]
    if smaller:
        return Suggestion(
            f"measure smaller batches than {e.batch_size}: each request waits for fewer others",
            {"sweep": {"batch_size": smaller}},
            e,
        )
    if e.batch_size > 1:
        return Suggestion(
            "smaller batches were measured and miss the target too: try another engine",
            suggest.backend(e).snippet,
            e,
        )
    return Suggestion(
        "even batch 1 misses the target: measure a faster engine (or precision, or machine)",
        suggest.backend(e).snippet,
        e,
    )


def experiment_dict(e: Experiment, short: dict[str, str], c: Check | None) -> dict[str, Any]:
    """One experiment in the JSON document."""

    def stat(metric: str) -> dict[str, Any] | None:
        s = e.stat(metric)
        if s is None:
            return None
        return {"mean": s.mean, "std": s.std, "n": s.n, "ci95_low": s.low, "ci95_high": s.high}

    return {
        "id": e.experiment_id,
        "short_id": short.get(e.experiment_id, e.experiment_id),
        "suite": e.suite,
        "backend": e.backend,
        "model": e.model,
        "precision": e.precision,
        "quantization": e.quantization,
        "batch_size": e.batch_size,
        "workload": e.workload,
        "variant": e.variant,
        "hardware": e.hardware,
        "params": e.params,
        "energy_method": e.energy_method,
        "energy_is_estimate": e.is_estimate,
        "n_ok": e.n_ok,
        "n_failed": e.n_failed,
        "stability": list(e.stability),
        "meets_targets": None if c is None else c.meets,
        "metrics": {
            m: stat(m)
            for m in (
                "j_per_output_token",
                "j_per_output_token_net",
                "j_per_request",
                "throughput_out_tok_s",
                "avg_power_w",
                "ttft_p99_s",
                "itl_p99_s",
                "e2e_p99_s",
            )
        },
    }


def as_json(advice: Advice) -> dict[str, Any]:
    """The stable machine-readable document of ``lembench advise --json``."""
    short = advice.short
    scn = advice.scenario
    return {
        "command": "advise",
        "results": str(advice.loaded.root),
        "suite": advice.loaded.suite,
        "scenario": {
            "name": scn.name,
            "description": scn.description,
            "targets": [
                {"metric": t.metric, "label": t.label, "limit_s": t.limit_s, "source": t.source}
                for t in scn.targets
            ],
        },
        "groups": [
            {
                "model": g.model,
                "workload": g.workload,
                "energy_basis": g.basis,
                "recommended": g.recommended.experiment_id if g.recommended else None,
                "closest": g.closest.experiment_id if g.closest else None,
                "statements": [{"text": s.line(short), "ids": list(s.ids)} for s in g.statements],
                "suggestion": g.suggestion.as_dict() if g.suggestion else None,
                "experiments": [
                    experiment_dict(e, short, g.checks[e.experiment_id]) for e in g.ranked
                ],
                "set_aside": [experiment_dict(e, short, None) for e in g.set_aside],
            }
            for g in advice.groups
        ],
        "levers": [
            {
                "lever": r.lever,
                "summary": r.summary(),
                "steps": [s.as_dict(short) for s in r.steps],
                "suggestion": r.suggestion.as_dict() if r.suggestion else None,
            }
            for r in advice.levers
        ],
        "pitfalls": [p.as_dict(short) for p in advice.pitfalls],
        "failed_experiments": [{"id": i, "errors": err} for i, err in advice.loaded.failed],
    }
