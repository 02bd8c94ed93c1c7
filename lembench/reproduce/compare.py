"""The comparisons that are fair across hardware, and the verdict of each claim.

A verdict is ``reproduced``, ``not_reproduced`` or ``not_comparable``, always with a one-line why.
Kinds (tolerances are relative, ``tol``):

- ``curve``: every point's value divided by the first point's, published vs measured, within
  ``tol``; and where the published curve moves by more than ``tol`` from one point to the next, the
  measured one moves the same way.
- ``ratio``: numerator / denominator of each pair, published vs measured, within ``tol``.
- ``ratio_range``: each pair's measured ratio inside the published ``[low, high]`` widened to
  ``[low x (1 - tol), high x (1 + tol)]``.
- ``ranking``: the points in the same order, and max / min (the spread) within ``tol``.
- ``absolute``: the values themselves within ``tol``, judged only when the measured hardware is the
  published hardware (``hardware.match``); otherwise not comparable.

The measured side of every quantity carries a 95% interval (relative half widths added in
quadrature for ratios); when it straddles a tolerance boundary the verdict says it is uncertain.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from lembench.reproduce.measured import Measured
from lembench.reproduce.reference import is_energy_metric

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not_reproduced"
NOT_COMPARABLE = "not_comparable"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE)

DUMMY_NOTE = "measured with dummy weights (random values, real architecture): cost per token only"
ESTIMATE_NOTE = "codecarbon's TDP model tracks time, not power"


@dataclass
class Quantity:
    """One compared quantity (a ratio, a value, a spread): published vs measured."""

    label: str
    published: float | None
    measured: float | None = None
    low: float | None = None  # measured 95% interval
    high: float | None = None
    deviation: float | None = None  # measured / published - 1 (ratio_range: from the range)
    ok: bool | None = None
    allowed: tuple[float, float] | None = None  # measured values that pass

    def as_record(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "published": self.published,
            "measured": self.measured,
            "ci95_low": self.low,
            "ci95_high": self.high,
            "deviation": self.deviation,
            "ok": self.ok,
            "allowed": list(self.allowed) if self.allowed else None,
        }


@dataclass
class Judgement:
    """The verdict of one claim and what it rests on."""

    verdict: str
    why: str
    uncertain: bool = False
    quantities: list[Quantity] = field(default_factory=list)
    published_order: list[str] | None = None
    measured_order: list[str] | None = None


@dataclass(frozen=True)
class PointValue:
    """A point of a claim: its published value in lembench's unit and what was measured."""

    label: str
    published: float
    measured: Measured


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _rel(m: Measured) -> float | None:
    if not (_finite(m.mean) and _finite(m.low) and _finite(m.high)) or m.mean == 0:
        return None
    return (m.high - m.low) / 2 / abs(m.mean)  # type: ignore[operator]


def _ratio(num: Measured, den: Measured) -> tuple[float, float | None, float | None]:
    """num/den with a 95% interval from the relative half widths added in quadrature."""
    value = num.mean / den.mean  # type: ignore[operator]
    r1, r2 = _rel(num), _rel(den)
    if r1 is None or r2 is None:
        return value, None, None
    rel = math.hypot(r1, r2)
    return value, value * (1 - rel), value * (1 + rel)


def _pct(x: float) -> str:
    return f"{x:+.0%}" if abs(x) >= 0.005 else f"{x:+.1%}"


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _straddles(q: Quantity) -> bool:
    """The measured interval reaches both inside and outside the passing band."""
    if q.allowed is None or q.low is None or q.high is None:
        return False
    lo, hi = q.allowed
    inside = q.high >= lo and q.low <= hi
    outside = q.low < lo or q.high > hi
    return inside and outside


def not_comparable_reason(
    claim: dict[str, Any],
    points: list[PointValue],
    *,
    dummy: bool,
    hardware_match: list[str],
    hardware_description: str,
) -> str | None:
    """Why ``claim`` cannot be judged from these measurements, or None when it can. Only the
    points the comparison uses count (a ratio claim's pairs)."""
    pairs = claim["comparison"].get("pairs")
    if pairs:
        used = {pair[side] for pair in pairs for side in ("numerator", "denominator")}
        points = [p for p in points if p.label in used]
    if dummy and claim["dummy_weights"] == "not_comparable":
        return f"{DUMMY_NOTE}; this claim is not: {claim['dummy_weights_reason']}"
    for p in points:
        if p.measured.failure is not None:
            return f"experiment {p.measured.experiment_id} ({p.label}) {p.measured.failure}"
    if is_energy_metric(claim["metric"]):
        for p in points:
            if p.measured.is_estimate:
                return (
                    f"energy of {p.label} is an estimate ({p.measured.energy_method}; "
                    f"{ESTIMATE_NOTE}), not a measurement"
                )
    for p in points:
        if p.measured.mean == 0 and claim["comparison"]["kind"] != "absolute":
            return f"measured {claim['metric']} of {p.label} is 0: no ratio can be formed"
    if claim["comparison"]["kind"] == "absolute":
        yours = sorted({p.measured.hardware or "unknown hardware" for p in points})
        needles = [n.lower() for n in hardware_match]
        same = needles and all(
            any(n in (p.measured.hardware or "").lower() for n in needles) for p in points
        )
        if not same:
            return f"hardware differs: {hardware_description} vs {' + '.join(yours)}"
    return None


def judge(
    claim: dict[str, Any],
    points: list[PointValue],
    *,
    dummy: bool = False,
    hardware_match: list[str] | None = None,
    hardware_description: str = "",
) -> Judgement:
    """The verdict of ``claim`` given its points' published values (lembench units) and
    measurements, in the claim's point order."""
    reason = not_comparable_reason(
        claim,
        points,
        dummy=dummy,
        hardware_match=hardware_match or [],
        hardware_description=hardware_description,
    )
    kind = claim["comparison"]["kind"]
    tol = float(claim["tolerance"]["relative"])
    if reason is not None:
        return Judgement(NOT_COMPARABLE, reason, quantities=_published_only(claim, points))
    judgement = {
        "curve": _curve,
        "ratio": _ratio_pairs,
        "ratio_range": _ratio_range,
        "ranking": _ranking,
        "absolute": _absolute,
    }[kind](claim, points, tol)
    if dummy:
        judgement.why = f"{DUMMY_NOTE}; {judgement.why}"
    no_ci = [p.label for p in points if _rel(p.measured) is None]
    if no_ci:
        judgement.uncertain = True
        judgement.why += (
            f"; no 95% CI for {', '.join(no_ci)} (fewer than 2 successful runs): verdict uncertain"
        )
    elif kind != "ranking":
        straddling = [q.label for q in judgement.quantities if _straddles(q)]
        if straddling:
            judgement.uncertain = True
            judgement.why += (
                f"; the 95% CI of {', '.join(straddling)} straddles the tolerance: "
                "verdict uncertain"
            )
    return judgement


def _published_only(claim: dict[str, Any], points: list[PointValue]) -> list[Quantity]:
    """The published side of the comparison, for a claim that could not be judged."""
    kind = claim["comparison"]["kind"]
    by = {p.label: p for p in points}
    if kind == "curve":
        first = points[0]
        return [
            Quantity(f"{p.label} / {first.label}", p.published / first.published)
            for p in points[1:]
        ]
    if kind in ("ratio", "ratio_range"):
        return [
            Quantity(
                f"{pair['numerator']} / {pair['denominator']}",
                by[pair["numerator"]].published / by[pair["denominator"]].published,
            )
            for pair in claim["comparison"]["pairs"]
        ]
    if kind == "ranking":
        values = [p.published for p in points]
        return [Quantity("spread (max / min)", max(values) / min(values))]
    return [Quantity(p.label, p.published) for p in points]


def _band(published: float, tol: float) -> tuple[float, float]:
    return (published * (1 - tol), published * (1 + tol))


def _ratio_quantity(label: str, published: float, num: Measured, den: Measured, tol: float):
    value, low, high = _ratio(num, den)
    deviation = value / published - 1
    return Quantity(
        label,
        published,
        value,
        low,
        high,
        deviation,
        abs(deviation) <= tol,
        _band(published, tol),
    )


def _worst(quantities: list[Quantity]) -> Quantity:
    return max(quantities, key=lambda q: abs(q.deviation or 0))


def _failing_line(failing: list[Quantity], tol: float, what: str = "published") -> str:
    worst = _worst(failing)
    more = len(failing) - 1
    return (
        f"{worst.label}: {_g(worst.measured)} vs {what} {_g(worst.published)} "
        f"({_pct(worst.deviation or 0)}; tolerance ±{tol:.0%})"
        + (f", and {more} more outside it" if more else "")
    )


def _curve(claim: dict[str, Any], points: list[PointValue], tol: float) -> Judgement:
    first = points[0]
    quantities = [
        _ratio_quantity(
            f"{p.label} / {first.label}",
            p.published / first.published,
            p.measured,
            first.measured,
            tol,
        )
        for p in points[1:]
    ]
    # Direction: wherever the published curve moves by more than the tolerance, the measured one
    # must move the same way (smaller published steps are within what the tolerance allows).
    wrong_way = []
    for prev, cur in itertools.pairwise(points):
        step = cur.published / prev.published - 1
        if abs(step) <= tol:
            continue
        measured_step = cur.measured.mean / prev.measured.mean - 1  # type: ignore[operator]
        if (step > 0 and measured_step <= 0) or (step < 0 and measured_step >= 0):  # flat too
            wrong_way.append((prev, cur, step, measured_step))
    failing = [q for q in quantities if not q.ok]
    if wrong_way:
        prev, cur, step, measured_step = wrong_way[0]
        why = (
            f"from {prev.label} to {cur.label} the measured value moves {_pct(measured_step)} "
            f"where the published one moves {_pct(step)}"
        )
        if failing:
            why += "; " + _failing_line(failing, tol)
        return Judgement(NOT_REPRODUCED, why, quantities=quantities)
    if failing:
        return Judgement(NOT_REPRODUCED, _failing_line(failing, tol), quantities=quantities)
    worst = _worst(quantities)
    return Judgement(
        REPRODUCED,
        f"every ratio to {first.label} within ±{tol:.0%} of the published one (largest "
        f"deviation {worst.label}: {_g(worst.measured)} vs {_g(worst.published)}, "
        f"{_pct(worst.deviation or 0)}); same direction",
        quantities=quantities,
    )


def _ratio_pairs(claim: dict[str, Any], points: list[PointValue], tol: float) -> Judgement:
    by = {p.label: p for p in points}
    quantities = []
    for pair in claim["comparison"]["pairs"]:
        num, den = by[pair["numerator"]], by[pair["denominator"]]
        quantities.append(
            _ratio_quantity(
                f"{num.label} / {den.label}",
                num.published / den.published,
                num.measured,
                den.measured,
                tol,
            )
        )
    failing = [q for q in quantities if not q.ok]
    if failing:
        return Judgement(NOT_REPRODUCED, _failing_line(failing, tol), quantities=quantities)
    worst = _worst(quantities)
    return Judgement(
        REPRODUCED,
        f"{'every ratio' if len(quantities) > 1 else 'the ratio'} within ±{tol:.0%} of the "
        f"published one ({worst.label}: {_g(worst.measured)} vs {_g(worst.published)}, "
        f"{_pct(worst.deviation or 0)})",
        quantities=quantities,
    )


def _ratio_range(claim: dict[str, Any], points: list[PointValue], tol: float) -> Judgement:
    by = {p.label: p for p in points}
    low, high = claim["comparison"]["range"]
    allowed = (low * (1 - tol), high * (1 + tol))
    quantities = []
    for pair in claim["comparison"]["pairs"]:
        num, den = by[pair["numerator"]], by[pair["denominator"]]
        value, lo, hi = _ratio(num.measured, den.measured)
        inside = allowed[0] <= value <= allowed[1]
        deviation = 0.0 if low <= value <= high else (value / (low if value < low else high) - 1)
        quantities.append(
            Quantity(
                f"{num.label} / {den.label}",
                num.published / den.published,
                value,
                lo,
                hi,
                deviation,
                inside,
                allowed,
            )
        )
    failing = [q for q in quantities if not q.ok]
    span = f"[{low:.3g}, {high:.3g}] widened by ±{tol:.0%} to [{allowed[0]:.3g}, {allowed[1]:.3g}]"
    if failing:
        worst = _worst(failing)
        more = len(failing) - 1
        return Judgement(
            NOT_REPRODUCED,
            f"{worst.label}: {_g(worst.measured)} is outside the published range {span}"
            + (f", and {more} more" if more else ""),
            quantities=quantities,
        )
    values = ", ".join(_g(q.measured) for q in quantities)
    return Judgement(
        REPRODUCED,
        f"measured ratio{'s' * (len(quantities) > 1)} {values} inside the published range {span}",
        quantities=quantities,
    )


def _ranking(claim: dict[str, Any], points: list[PointValue], tol: float) -> Judgement:
    published_order = [p.label for p in sorted(points, key=lambda p: p.published)]
    measured_order = [p.label for p in sorted(points, key=lambda p: p.measured.mean)]  # type: ignore[arg-type,return-value]
    values = [p.published for p in points]
    published_spread = max(values) / min(values)
    top = max(points, key=lambda p: p.measured.mean)  # type: ignore[arg-type,return-value]
    bottom = min(points, key=lambda p: p.measured.mean)  # type: ignore[arg-type,return-value]
    spread = _ratio_quantity(
        "spread (max / min)", published_spread, top.measured, bottom.measured, tol
    )
    judgement = Judgement(
        NOT_REPRODUCED,
        "",
        quantities=[spread],
        published_order=published_order,
        measured_order=measured_order,
    )
    # Neighbours in the measured order whose intervals overlap could swap on another run.
    by = {p.label: p.measured for p in points}
    overlapping = []
    for a, b in itertools.pairwise(measured_order):
        ma, mb = by[a], by[b]
        if _finite(ma.high) and _finite(mb.low) and ma.high >= mb.low:  # type: ignore[operator]
            overlapping.append(f"{a} and {b}")
    same = published_order == measured_order
    if not same:
        first_diff = next(
            i
            for i, (x, y) in enumerate(zip(published_order, measured_order, strict=True))
            if x != y
        )
        judgement.why = (
            f"order differs from position {first_diff + 1}: measured "
            f"{' < '.join(measured_order)} vs published {' < '.join(published_order)}"
        )
    elif not spread.ok:
        judgement.why = f"same order, but {_failing_line([spread], tol)}"
    else:
        judgement.verdict = REPRODUCED
        judgement.why = (
            f"same order ({' < '.join(measured_order)}) and spread {_g(spread.measured)} vs "
            f"published {_g(published_spread)} ({_pct(spread.deviation or 0)}; tolerance "
            f"±{tol:.0%})"
        )
    if overlapping:
        judgement.uncertain = True
        judgement.why += (
            f"; the 95% CIs of {'; '.join(overlapping)} overlap: the order is uncertain"
        )
    elif _straddles(spread):
        judgement.uncertain = True
        judgement.why += "; the spread's 95% CI straddles the tolerance: verdict uncertain"
    return judgement


def _absolute(claim: dict[str, Any], points: list[PointValue], tol: float) -> Judgement:
    quantities = []
    for p in points:
        m = p.measured
        deviation = m.mean / p.published - 1  # type: ignore[operator]
        quantities.append(
            Quantity(
                p.label,
                p.published,
                m.mean,
                m.low if _finite(m.low) else None,
                m.high if _finite(m.high) else None,
                deviation,
                abs(deviation) <= tol,
                _band(p.published, tol),
            )
        )
    failing = [q for q in quantities if not q.ok]
    if failing:
        # Values in the published unit: the reader compares them with the source.
        scale, worst = float(claim["scale"]), _worst(failing)
        more = len(failing) - 1
        why = (
            f"same hardware, but {worst.label}: {_g((worst.measured or 0) / scale)} vs published "
            f"{_g((worst.published or 0) / scale)} {claim['unit']} ({_pct(worst.deviation or 0)}; "
            f"tolerance ±{tol:.0%})" + (f", and {more} more outside it" if more else "")
        )
        return Judgement(NOT_REPRODUCED, why, quantities=quantities)
    worst = _worst(quantities)
    return Judgement(
        REPRODUCED,
        f"same hardware; every value within ±{tol:.0%} of the published one (largest deviation "
        f"{worst.label}: {_pct(worst.deviation or 0)})",
        quantities=quantities,
    )
