"""``lembench estimate``: monthly energy, cost and CO2 projected from measured energy per request.

For each experiment: kWh/month = requests x J/request x PUE / 3.6e6 (J/request: the mean over its
runs, of requests of the workload's own shape; gross, so idle power during the run is included);
cost = kWh x price (only when a price is given, in its currency); CO2 = kWh x grid intensity (the
given one, else the one the runs recorded). Measured and estimated energy are projected in separate
tables and never ranked together. ``current`` names the user's configuration; the best is the
lowest-energy experiment of the same model, workload and energy kind (meeting the scenario's
latency targets when one is given).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lembench.advice.advise import Statement
from lembench.advice.compare import change, noise_note
from lembench.advice.data import Experiment, Loaded
from lembench.advice.scenarios import Scenario, check
from lembench.errors import UserError

J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Assumptions:
    """What the projection assumes, as given by the user."""

    requests_per_month: float
    pue: float = 1.0
    price_per_kwh: float | None = None
    grid_g_per_kwh: float | None = None

    def validate(self) -> None:
        """One-line UserError for a value out of range."""
        if not self.requests_per_month > 0:
            raise UserError(f"--requests-per-month: must be > 0, got {self.requests_per_month:g}")
        if not self.pue >= 1:
            raise UserError(f"--pue: must be >= 1 (facility energy / IT energy), got {self.pue:g}")
        if self.price_per_kwh is not None and not self.price_per_kwh >= 0:
            raise UserError(f"--price-per-kwh: must be >= 0, got {self.price_per_kwh:g}")
        if self.grid_g_per_kwh is not None and not self.grid_g_per_kwh >= 0:
            raise UserError(f"--grid-g-per-kwh: must be >= 0, got {self.grid_g_per_kwh:g}")


@dataclass(frozen=True)
class Projection:
    """One experiment's month."""

    experiment: Experiment
    j_per_request: float
    kwh: float
    cost: float | None
    co2_kg: float | None
    co2_source: str | None
    current: bool = False


@dataclass
class Projections:
    """Everything ``lembench estimate`` prints."""

    assumptions: Assumptions
    measured: list[Projection]
    estimated: list[Projection]
    short: dict[str, str]
    notes: list[str] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    current: Projection | None = None
    best: Projection | None = None


def project_one(e: Experiment, a: Assumptions, current: bool = False) -> Projection | None:
    """The monthly projection of one experiment (None without a recorded J/request)."""
    j = e.mean("j_per_request")
    if j is None:
        return None
    kwh = a.requests_per_month * j * a.pue / J_PER_KWH
    cost = None if a.price_per_kwh is None else kwh * a.price_per_kwh
    if a.grid_g_per_kwh is not None:
        intensity, source = a.grid_g_per_kwh, "--grid-g-per-kwh"
    else:
        intensity, source = e.co2_intensity, e.co2_source
    co2 = None if intensity is None else kwh * intensity / 1000.0
    return Projection(e, j, kwh, cost, co2, source if co2 is not None else None, current)


def find(loaded: Loaded, ident: str) -> Experiment:
    """The loaded experiment whose id starts with ``ident`` (one-line error otherwise)."""
    hits = [e for e in loaded.experiments if e.experiment_id.startswith(ident)]
    ids = sorted({e.experiment_id for e in hits})
    if not ids:
        raise UserError(
            f"--current: no experiment with a successful run matches {ident!r} under {loaded.root}"
        )
    if len(ids) > 1:
        raise UserError(f"--current: {ident!r} matches {len(ids)} experiments; give more digits")
    return max(hits, key=lambda e: e.n_ok)


def project(
    loaded: Loaded, a: Assumptions, current: str | None = None, scn: Scenario | None = None
) -> Projections:
    """Projections for every experiment, lowest first within each model and workload; with
    ``current``, its savings from switching to the best comparable experiment."""
    a.validate()
    cur = find(loaded, current) if current is not None else None
    rows: list[Projection] = []
    missing: list[str] = []
    for e in loaded.experiments:
        p = project_one(e, a, e is cur)
        if p is None:
            missing.append(e.experiment_id)
        else:
            rows.append(p)
    rows.sort(key=lambda p: (p.experiment.model, p.experiment.workload, p.kwh))
    out = Projections(
        a,
        [p for p in rows if not p.experiment.is_estimate],
        [p for p in rows if p.experiment.is_estimate],
        loaded.short,
    )
    out.notes = _notes(a, rows, missing)
    if cur is not None:
        _current_vs_best(out, cur, scn)
    else:
        _best_per_group(out, scn)
    return out


def _notes(a: Assumptions, rows: list[Projection], missing: list[str]) -> list[str]:
    notes = [
        "J/request is gross energy per request of the workload's own shape (input->output "
        "tokens as measured; idle power during the run included), at the experiment's batch "
        "size: a projection assumes traffic like it",
    ]
    if a.pue == 1.0:
        notes.append(
            "PUE 1.0: the meters cover the devices only (GPU/CPU/DRAM), not cooling and power "
            "conversion; pass --pue for a facility (Uptime Institute's 2023 survey average: 1.58)"
        )
    if a.price_per_kwh is not None:
        notes.append(f"cost at {a.price_per_kwh:g} per kWh, in the currency of that price")
    if a.grid_g_per_kwh is not None:
        notes.append(f"CO2 at {a.grid_g_per_kwh:g} g/kWh (--grid-g-per-kwh)")
    else:
        sources = sorted({p.co2_source for p in rows if p.co2_source})
        if sources:
            notes.append(
                "CO2 at the grid intensity the runs recorded: "
                + "; ".join(sources)
                + "; --grid-g-per-kwh sets your own"
            )
        else:
            notes.append("no grid intensity recorded: pass --grid-g-per-kwh for CO2")
    if any(p.experiment.is_estimate for p in rows):
        notes.append(
            "estimated energy is modelled (no hardware meter): its projections are estimates and "
            "are listed apart from measured ones"
        )
    if missing:
        notes.append(
            f"no J/request recorded for {len(missing)} experiment(s): {', '.join(missing)}"
        )
    return notes


def _eligible(p: Projection, scn: Scenario | None) -> bool:
    return scn is None or not scn.targets or bool(check(p.experiment, scn).meets)


def _peers(out: Projections, e: Experiment) -> list[Projection]:
    rows = out.estimated if e.is_estimate else out.measured
    return [p for p in rows if (p.experiment.model, p.experiment.workload) == (e.model, e.workload)]


def _current_vs_best(out: Projections, cur: Experiment, scn: Scenario | None) -> None:
    peers = _peers(out, cur)
    mine = next((p for p in peers if p.experiment is cur), None)
    if mine is None:  # no J/request recorded
        out.statements.append(
            Statement("the current experiment recorded no J/request", (cur.experiment_id,))
        )
        return
    out.current = mine
    eligible = [p for p in peers if _eligible(p, scn)]
    target = f" that meets the {scn.name} targets" if scn and scn.targets else ""
    if not eligible:
        out.statements.append(
            Statement(
                f"no experiment of this model and workload{target} to compare with",
                (cur.experiment_id,),
            )
        )
        return
    best = out.best = min(eligible, key=lambda p: p.kwh)
    kind = "estimated " if cur.is_estimate else ""
    if best is mine:
        out.statements.append(
            Statement(
                f"the current configuration is already the lowest-energy one{target} for "
                f"{cur.model}, {cur.workload}: {kind}{mine.kwh:.4g} kWh/month",
                (cur.experiment_id,),
            )
        )
        return
    saved = mine.kwh - best.kwh
    parts = [f"{saved:.4g} kWh/month ({saved / mine.kwh * 100:.0f}% less)"]
    if mine.cost is not None and best.cost is not None:
        parts.append(f"{mine.cost - best.cost:.4g} per month")
    if mine.co2_kg is not None and best.co2_kg is not None:
        parts.append(f"{mine.co2_kg - best.co2_kg:.4g} kg CO2 per month")
    c = change(cur, best.experiment, "j_per_request")
    noise = noise_note(c) if c is not None else ""
    out.statements.append(
        Statement(
            f"switching from the current {cur.label()} to {best.experiment.label()}{target} "
            f"saves {kind}{', '.join(parts)}{noise} (projection: {mine.kwh:.4g} -> "
            f"{best.kwh:.4g} kWh/month)",
            (cur.experiment_id, best.experiment.experiment_id),
        )
    )


def _best_per_group(out: Projections, scn: Scenario | None) -> None:
    groups: dict[tuple[str, str, bool], list[Projection]] = defaultdict(list)
    for p in out.measured + out.estimated:
        e = p.experiment
        groups[(e.model, e.workload, e.is_estimate)].append(p)
    for (model, workload, estimate), rows in groups.items():
        eligible = [p for p in rows if _eligible(p, scn)]
        if not eligible:
            continue
        best = min(eligible, key=lambda p: p.kwh)
        worst = max(rows, key=lambda p: p.kwh)
        kind = "estimated " if estimate else ""
        target = f" meeting the {scn.name} targets" if scn and scn.targets else ""
        text = (
            f"best for {model}, {workload}{target}: {best.experiment.label()}, {kind}"
            f"{best.kwh:.4g} kWh/month"
        )
        ids = [best.experiment.experiment_id]
        if worst is not best:
            text += (
                f"; the costliest, {worst.experiment.label()}, needs x{worst.kwh / best.kwh:.3g}"
            )
            ids.append(worst.experiment.experiment_id)
        out.statements.append(Statement(text, tuple(ids)))


def projections_json(p: Projections, scn: Scenario | None = None) -> dict[str, Any]:
    """The stable machine-readable document of ``lembench estimate --json``."""

    def row(r: Projection) -> dict[str, Any]:
        e = r.experiment
        return {
            "id": e.experiment_id,
            "short_id": p.short.get(e.experiment_id, e.experiment_id),
            "suite": e.suite,
            "model": e.model,
            "backend": e.backend,
            "precision": e.precision,
            "quantization": e.quantization,
            "batch_size": e.batch_size,
            "hardware": e.hardware,
            "workload": e.workload,
            "input_tokens": e.input_tokens,
            "output_tokens": e.output_tokens,
            "energy_method": e.energy_method,
            "energy_is_estimate": e.is_estimate,
            "j_per_request": r.j_per_request,
            "kwh_per_month": r.kwh,
            "cost_per_month": r.cost,
            "co2_kg_per_month": r.co2_kg,
            "co2_source": r.co2_source,
            "current": r.current,
        }

    a = p.assumptions
    return {
        "command": "estimate",
        "projection": "requests_per_month x j_per_request x pue / 3.6e6 kWh",
        "assumptions": {
            "requests_per_month": a.requests_per_month,
            "pue": a.pue,
            "price_per_kwh": a.price_per_kwh,
            "grid_g_per_kwh": a.grid_g_per_kwh,
        },
        "scenario": None
        if scn is None
        else {
            "name": scn.name,
            "targets": [
                {"metric": t.metric, "limit_s": t.limit_s, "source": t.source} for t in scn.targets
            ],
        },
        "measured": [row(r) for r in p.measured],
        "estimated": [row(r) for r in p.estimated],
        "current": None if p.current is None else p.current.experiment.experiment_id,
        "best": None if p.best is None else p.best.experiment.experiment_id,
        "notes": p.notes,
        "statements": [{"text": s.line(p.short), "ids": list(s.ids)} for s in p.statements],
    }
