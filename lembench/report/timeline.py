"""The power timeline of one run: power per energy domain over the measured window, prefill and
decode shaded from the request timings, the idle baseline, and, for meters that give no timeline
(codecarbon's estimate), the estimated average power as a dashed, labelled line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from markupsafe import Markup, escape

from lembench.report.charts import (
    DECODE_COLOUR,
    M_BOTTOM,
    M_LEFT,
    M_RIGHT,
    M_TOP,
    PALETTE,
    PREFILL_COLOUR,
    Axis,
    H,
    W,
    _axes,
    _legend,
    _points,
    _svg,
    fmt_num,
)
from lembench.report.data import number
from lembench.report.marks import ESTIMATE_COLOUR, tag


def power_series(
    samples: Sequence[dict], max_points: int = 600
) -> dict[str, list[tuple[float, float]]]:
    """Power per domain (and ``total``) over time from timeline samples: the slope of the cumulative
    energy between (decimated) samples, drawn as steps; instantaneous ``power_w`` where the
    timeline has no energy series."""
    rows = []
    for s in samples:
        t = number(s.get("t_s")) if isinstance(s, dict) else None
        if t is not None:
            rows.append((t, s))
    rows.sort(key=lambda r: r[0])
    domains = sorted({d for _, s in rows if isinstance(e := s.get("energy_j"), dict) for d in e})
    out: dict[str, list[tuple[float, float]]] = {}
    if domains and len(rows) > 1:
        stride = max(1, math.ceil(len(rows) / max_points))
        picked = [rows[i] for i in sorted({*range(0, len(rows), stride), len(rows) - 1})]
        series = {d: [(t, _energy(s, d)) for t, s in picked] for d in domains}
        if len(domains) > 1:  # total only where every domain has a value
            series["total"] = [
                (t, None if any(series[d][i][1] is None for d in domains)
                 else sum(series[d][i][1] for d in domains))  # type: ignore[misc]
                for i, (t, _) in enumerate(picked)
            ]  # fmt: skip
        for d, points in series.items():
            line: list[tuple[float, float]] = []
            for (ta, ea), (tb, eb) in pairwise(points):
                if ea is not None and eb is not None and tb > ta:
                    p = (eb - ea) / (tb - ta)
                    line += [(ta, p), (tb, p)]
            if line:
                out[d] = line
        return out
    for t, s in rows:
        pw = s.get("power_w")
        if isinstance(pw, dict):
            for d, v in pw.items():
                if (v := number(v)) is not None:
                    out.setdefault(str(d), []).append((t, v))
    return out


def _energy(sample: dict, domain: str) -> float | None:
    e = sample.get("energy_j")
    return number(e.get(domain)) if isinstance(e, dict) else None


def timeline_chart(
    samples: Sequence[dict],
    batches: Sequence[tuple[float, float | None, float]],
    duration_s: float | None,
    idle_power_w: float | None = None,
    chart_id: str = "timeline",
    title: str = "Power over the measured window",
    estimated_power_w: float | None = None,
    method: str | None = None,
) -> Markup:
    """Power over the window, one line per energy domain, prefill and decode intervals shaded
    (from the request timings), the idle baseline as a dashed line. Without a timeline,
    ``estimated_power_w`` (the run's average power from an estimating meter such as codecarbon,
    named by ``method``) is drawn as a dashed line labelled as an estimate, and the chart says
    that the meter gives no timeline."""
    series = power_series(samples)
    if series:
        estimated_power_w = None  # a real timeline needs no stand-in
    ends = [duration_s or 0.0, *(b[2] for b in batches)]
    t_end = max([*ends, *(t for line in series.values() for t, _ in line)])
    if t_end <= 0:
        return Markup('<p class="empty">No timeline or request timings recorded.</p>')
    x = Axis(0.0, t_end, M_LEFT, W - M_RIGHT)
    ys = [p for line in series.values() for _, p in line]
    ys += [v for v in (idle_power_w, estimated_power_w) if v is not None]
    y = Axis.fit([0.0, *ys] if ys else [0.0, 1.0], H - M_BOTTOM, M_TOP, log=False)
    band = {"y": float(M_TOP), "height": str(H - M_TOP - M_BOTTOM)}
    body = ['<g class="phases">']
    for start, first, end in batches:
        if first is not None and first > start:
            width = max(x(first) - x(start), 1.5)  # visible even when prefill is short
            body.append(
                tag(
                    "rect",
                    class_="prefill",
                    x=x(start),
                    width=width,
                    fill=PREFILL_COLOUR,
                    fill_opacity="0.35",
                    **band,
                )
            )
        d0 = first if first is not None else start
        width = max(x(end) - x(d0), 0.5)
        body.append(
            tag(
                "rect",
                class_="decode",
                x=x(d0),
                width=width,
                fill=DECODE_COLOUR,
                fill_opacity="0.25",
                **band,
            )
        )
    body.append("</g>")
    body += _axes(x, y, "time since window start (s)", "power (W)")
    legend = [("prefill", PREFILL_COLOUR, "band"), ("decode", DECODE_COLOUR, "band")]
    body.append('<g class="marks">')
    for i, (domain, line) in enumerate(sorted(series.items(), key=lambda kv: kv[0] == "total")):
        colour = "#000000" if domain == "total" else PALETTE[i % len(PALETTE)]
        pts = _points((x(t), y(p)) for t, p in line)
        body.append(
            tag(
                "polyline",
                class_="mark line",
                points=pts,
                fill="none",
                stroke=colour,
                stroke_width="1.8",
            )
        )
        legend.append((f"{domain} power", colour, "line"))
    if idle_power_w is not None:
        py = y(idle_power_w)
        body.append(
            tag(
                "line",
                class_="idle",
                x1=x.p0,
                x2=x.p1,
                y1=py,
                y2=py,
                stroke="#666",
                stroke_dasharray="4 3",
            )
        )
        legend.append((f"idle baseline {fmt_num(idle_power_w)} W", "#666", "dashed"))
    if not series:
        who = method or "the meter"
        note = f"{who} gives no power timeline"
        if estimated_power_w is not None:
            py = y(estimated_power_w)
            body.append(
                tag("line", class_="estimated-power", x1=x.p0, x2=x.p1, y1=py, y2=py,
                    stroke=ESTIMATE_COLOUR, stroke_width="2", stroke_dasharray="8 4")
            )  # fmt: skip
            legend.append(
                (f"estimated avg {fmt_num(estimated_power_w)} W", ESTIMATE_COLOUR, "dashed")
            )
            note += f": dashed, its estimated average power ({fmt_num(estimated_power_w)} W)"
        body.append(
            tag("text", escape(note), class_="no-timeline", x=x.p0 + 8, y=float(M_TOP + 14))
        )
    body.append("</g>")
    body += _legend(legend)
    what = "power timeline" if series else "request phases only (no power timeline recorded)"
    desc = f"{what}; {len(batches)} batches over {t_end:.3g} s."
    return _svg(chart_id, title, desc, body)
