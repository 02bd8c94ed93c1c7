"""Terminal output of ``lembench reproduce``: the study list and the side-by-side table.

Values are shown in the published unit on both sides (measured x 1/scale), so a reader compares
like with like; the fair comparison (ratios, order, spread) is what the verdict rests on, and the
table says so by putting it in its own columns.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lembench.reproduce.compare import NOT_COMPARABLE, REPRODUCED, Quantity
from lembench.reproduce.record import ClaimResult

VERDICT_STYLE = {
    REPRODUCED: "[green]reproduced[/green]",
    "not_reproduced": "[red]not reproduced[/red]",
    NOT_COMPARABLE: "[yellow]not comparable[/yellow]",
}
UNVERIFIED_MARK = "†"


def study_table(rows: list[dict[str, Any]], title: str) -> Table:
    """``lembench reproduce --list``: one row per study."""
    table = Table(title=title)
    for col in ("study", "title", "source", "hardware", "claims", "--dummy-weights", "figures"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"],
            escape(r["title"]),
            escape(r["source"]),
            escape(r["hardware"]),
            str(r["claims"]),
            escape(r["dummy"]),
            "verified" if r["verified"] else f"[yellow]{escape(r['verification'])}[/yellow]",
        )
    return table


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}"


def _measured_cell(point: Any, scale: float) -> str:
    m = point.measured
    if m.mean is None:
        return "[yellow]none[/yellow]"
    value = _num(m.mean / scale)
    if m.low is not None and m.high is not None:
        value += f" ±{(m.high - m.low) / 2 / scale:.2g}"
    if m.is_estimate:
        value += " [yellow](estimate)[/yellow]"
    return value


def _quantity_cells(q: Quantity | None, scale: float = 1.0) -> tuple[str, str, str]:
    """Label, published and measured of a compared quantity; ``scale`` converts values (absolute
    claims) back to the published unit, ratios have none."""
    if q is None:
        return ("", "", "")

    def v(x: float | None) -> float | None:
        return None if x is None else x / scale

    measured = "-" if q.measured is None else f"{v(q.measured):.3g}"
    if q.measured is not None and q.low is not None and q.high is not None:
        measured += f" [{v(q.low):.3g}, {v(q.high):.3g}]"
    if q.ok is False:
        measured = f"[red]{measured}[/red]"
    return (escape(q.label), _num(v(q.published)), measured)


def claim_rows(result: ClaimResult) -> list[tuple[str, ...]]:
    """Rows of one claim: published and measured points on the left, the compared quantities on
    the right (a curve's ratios beside the point they belong to)."""
    claim, judgement = result.claim, result.judgement
    kind = claim["comparison"]["kind"]
    quantities: list[Quantity | None] = list(judgement.quantities)
    if kind == "curve":
        quantities = [None, *quantities]
    n = max(len(result.points), len(quantities))
    verdict = VERDICT_STYLE[judgement.verdict] + (" (uncertain)" * judgement.uncertain)
    tolerance = f"±{claim['tolerance']['relative']:.0%}"
    if kind == "ratio_range":
        low, high = claim["comparison"]["range"]
        tolerance = f"[{low:g}, {high:g}] ±{claim['tolerance']['relative']:.0%}"
    rows = []
    for k in range(n):
        point = result.points[k] if k < len(result.points) else None
        spec = claim["points"][k] if k < len(claim["points"]) else None
        left = ("", "", "")
        if point is not None and spec is not None:
            mark = "" if spec["verification"] == "verified" else UNVERIFIED_MARK
            left = (
                escape(point.label),
                f"{_num(spec['published'])}{mark}",
                _measured_cell(point, claim["scale"]),
            )
        right = _quantity_cells(
            quantities[k] if k < len(quantities) else None,
            claim["scale"] if kind == "absolute" else 1.0,
        )
        first = k == 0
        rows.append(
            (
                escape(claim["id"]) if first else "",
                *left,
                (kind.replace("_", " ") if first else ""),
                *right,
                tolerance if first else "",
                verdict if first else "",
            )
        )
    return rows


def result_table(results: list[ClaimResult], title: str) -> Table:
    """The side-by-side table of one comparison."""
    table = Table(title=title, show_lines=True)
    for col, justify in (
        ("claim", "left"),
        ("point", "left"),
        ("published", "right"),
        ("measured (±95% CI)", "right"),
        ("fair comparison", "left"),
        ("compared", "left"),
        ("published", "right"),
        ("measured [95% CI]", "right"),
        ("tolerance", "left"),
        ("verdict", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for result in results:
        for row in claim_rows(result):
            table.add_row(*row)
    return table


def print_result(console: Console, study: Any, results: list[ClaimResult], record: dict) -> None:
    """The table, then each claim's verdict with its why, units and notes."""
    tag = " (dummy weights)" if record["dummy_weights"] else ""
    console.print(result_table(results, f"{study.id}{tag}: published vs measured"))
    hardware = ", ".join(record["hardware"]["measured"]) or "none (no successful run)"
    console.print(
        f"published on: {escape(record['hardware']['published'])}; measured on: {escape(hardware)}"
    )
    for result in results:
        claim, j = result.claim, result.judgement
        verdict = VERDICT_STYLE[j.verdict] + (" (uncertain)" * j.uncertain)
        console.print(
            f"- [bold]{escape(claim['id'])}[/bold] ({escape(claim['metric'])}, published in "
            f"{escape(claim['unit'])}): {verdict}: {escape(j.why)}",
            soft_wrap=True,
        )
        if j.published_order:
            console.print(
                f"  order, lowest first: published {' < '.join(map(escape, j.published_order))}; "
                f"measured {' < '.join(map(escape, j.measured_order or []))}",
                soft_wrap=True,
            )
    if any(p["verification"] != "verified" for r in results for p in r.claim["points"]):
        console.print(
            f"{UNVERIFIED_MARK} figure not verified against the source (see the reference file)"
        )
    s = record["summary"]
    console.print(
        f"{s['reproduced']} reproduced, {s['not_reproduced']} not reproduced, "
        f"{s['not_comparable']} not comparable."
    )
