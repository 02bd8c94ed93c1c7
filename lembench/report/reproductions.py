"""The report's Reproductions page: the latest ``lembench reproduce`` record of each study (one with
real weights, one with dummy weights, where both exist), with its side-by-side table, the verdicts
and their reasons, the citation and links to the experiment pages.

Records are read from ``<results>/_reproductions/`` (``lembench.reproduce.record``); they are
untrusted files, so only schema-valid ones are shown, and every string reaches the page through
jinja2's autoescaping. Source URLs are shown as text, not links: the site never points a browser
at another host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from lembench.report.data import Collected

PAGE = "reproductions.html"
VERDICT_WORDS = {
    "reproduced": "reproduced",
    "not_reproduced": "not reproduced",
    "not_comparable": "not comparable",
}


def records_for_site(results_dir: Path, suite: str | None = None) -> list[dict[str, Any]]:
    """The records the page shows: the latest per study and weights kind, only those of ``suite``
    when the site is built for one suite."""
    from lembench.reproduce.record import latest_records

    records = latest_records(Path(results_dir))
    return [r for r in records if suite is None or r["suite"] == suite]


def _num(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def _measured(point: dict[str, Any], scale: float) -> str:
    m = point["measured"]
    if m["mean"] is None:
        return "none"
    text = _num(m["mean"] / scale)
    if m["ci95_low"] is not None and m["ci95_high"] is not None:
        text += f" ±{(m['ci95_high'] - m['ci95_low']) / 2 / scale:.2g}"
    return text


def _quantity(q: dict[str, Any] | None, scale: float = 1.0) -> dict[str, Any] | None:
    """Display strings of a compared quantity; ``scale`` converts values (absolute claims) back
    to the published unit, ratios have none."""
    if q is None:
        return None

    def v(x: float | None) -> float | None:
        return None if x is None else x / scale

    measured = "-" if q["measured"] is None else f"{v(q['measured']):.3g}"
    ci = ""
    if q["ci95_low"] is not None and q["ci95_high"] is not None:
        ci = f"[{v(q['ci95_low']):.3g}, {v(q['ci95_high']):.3g}]"
    return {
        "label": q["label"],
        "published": _num(v(q["published"])),
        "measured": measured,
        "ci": ci,
        "failed": q["ok"] is False,
    }


def claim_context(claim: dict[str, Any], pages: dict[tuple[str, str], str], suite: str) -> dict:
    """One claim's rows: points on the left, compared quantities on the right (a curve's ratio
    beside the point it belongs to)."""
    quantities: list[dict[str, Any] | None] = list(claim["quantities"])
    if claim["kind"] == "curve":
        quantities = [None, *quantities]
    rows = []
    for k in range(max(len(claim["points"]), len(quantities))):
        point = claim["points"][k] if k < len(claim["points"]) else None
        row: dict[str, Any] = {"point": None, "quantity": None}
        if point is not None:
            m = point["measured"]
            row["point"] = {
                "label": point["label"],
                "published": _num(point["published"]),
                "unverified": point["verification"] != "verified",
                "measured": _measured(point, claim["scale"]),
                "estimate": m["is_estimate"],
                "failure": m["failure"],
                "hardware": m["hardware"] or "",
                "experiment_id": point["experiment_id"],
                "page": pages.get((suite, point["experiment_id"])),
            }
        if k < len(quantities):
            scale = claim["scale"] if claim["kind"] == "absolute" else 1.0
            row["quantity"] = _quantity(quantities[k], scale)
        rows.append(row)
    tolerance = f"±{claim['tolerance']['relative']:.0%}"
    if claim["kind"] == "ratio_range" and claim.get("range"):
        low, high = claim["range"]
        tolerance = f"range [{low:g}, {high:g}] widened by {tolerance}"
    return {
        "id": claim["id"],
        "statement": claim["statement"],
        "metric": claim["metric"],
        "unit": claim["unit"],
        "kind": claim["kind"].replace("_", " "),
        "tolerance": tolerance,
        "tolerance_why": claim["tolerance"]["why"],
        "verdict": claim["verdict"],
        "verdict_text": VERDICT_WORDS[claim["verdict"]],
        "uncertain": claim["uncertain"],
        "why": claim["why"],
        "verification": claim["verification"],
        "published_order": claim.get("published_order"),
        "measured_order": claim.get("measured_order"),
        "rows": rows,
    }


def page_context(records: list[dict[str, Any]], collected: Collected) -> list[dict[str, Any]]:
    """Template context of every record shown."""
    pages = {key: exp.page for key, exp in collected.experiments.items() if exp.page}
    studies = []
    for r in records:
        studies.append(
            {
                "anchor": f"{r['study']}{'-dummy' if r['dummy_weights'] else ''}",
                "record": r,
                "claims": [claim_context(c, pages, r["suite"]) for c in r["claims"]],
            }
        )
    return studies


def render_page(
    env: jinja2.Environment,
    site: Path,
    records: list[dict[str, Any]],
    collected: Collected,
    common: dict[str, Any],
) -> list[str]:
    """Write ``reproductions.html``; returns the site-relative paths written."""
    html = env.get_template("reproductions.html.j2").render(
        **common,
        root="",
        page_title="Reproductions",
        studies=page_context(records, collected),
    )
    (site / PAGE).write_text(html, "utf-8")
    return [PAGE]
