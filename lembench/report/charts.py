"""Self-contained SVG charts, drawn in Python (no chart library, no script, no external request).

Each function returns inline SVG markup (``markupsafe.Markup``) for a jinja2 template. Every piece
of user-supplied text goes through ``escape``; numbers are formatted by us. No ``xmlns`` attribute:
inline SVG in HTML does not need one, and the site must not name any other host.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from markupsafe import Markup, escape

from lembench.report.data import Stat, number

#: Okabe-Ito colours (distinguishable with the common colour-vision deficiencies).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
ESTIMATE_COLOUR = "#888888"
PREFILL_COLOUR = "#E69F00"
DECODE_COLOUR = "#56B4E9"
W, H = 720, 400
M_LEFT, M_RIGHT, M_TOP, M_BOTTOM = 72, 180, 24, 56


def fmt_num(v: float) -> str:
    """Compact tick/label text: 3 significant digits, SI suffix for large numbers."""
    if v == 0:
        return "0"
    a = abs(v)
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= factor:
            return f"{v / factor:.3g}{suffix}"
    return f"{v:.3g}"


@dataclass
class Axis:
    """A linear or logarithmic mapping of [lo, hi] onto pixels [p0, p1]."""

    lo: float
    hi: float
    p0: float
    p1: float
    log: bool = False

    @classmethod
    def fit(cls, values: Iterable[float], p0: float, p1: float, log: bool | None = None) -> Axis:
        vs = [v for v in values if v is not None and math.isfinite(v)]
        if not vs:
            vs = [0.0, 1.0]
        lo, hi = min(vs), max(vs)
        if log is None:  # log scale when values span more than ~1.5 decades
            log = lo > 0 and hi / lo > 30
        if log:
            lo, hi = lo / 1.25, hi * 1.25
        else:
            pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
            lo = 0.0 if lo >= 0 and lo - pad < 0 else lo - pad
            hi = hi + pad
        return cls(lo, hi, p0, p1, log)

    def __call__(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / ((self.hi - self.lo) or 1.0)
        return self.p0 + f * (self.p1 - self.p0)

    def ticks(self) -> list[float]:
        if self.log:
            a, b = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            mults = (1, 2, 5) if b - a <= 3 else (1,)
            ts = [m * 10.0**e for e in range(a, b + 1) for m in mults]
            return [t for t in ts if self.lo <= t <= self.hi]
        span = self.hi - self.lo
        raw = span / 5
        mag = 10 ** math.floor(math.log10(raw))
        step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
        first = math.ceil(self.lo / step) * step
        count = int((self.hi - first) / step + 1e-9) + 1
        return [round(first + i * step, 12) for i in range(count)]


@dataclass
class Point:
    """One experiment in a scatter chart."""

    x: float
    y: float
    label: str
    href: str
    group: str  # colour legend entry (e.g. the backend)
    estimate: bool = False
    y_low: float | None = None
    y_high: float | None = None


@dataclass
class Series:
    """A line of points (x, Stat of y, href) with a legend label."""

    label: str
    points: list[tuple[float, Stat, str]] = field(default_factory=list)
    estimate: bool = False


def _f(v: float) -> str:
    return f"{v:.1f}"


_ATTR_NAMES: dict[str, str] = {}


def _attr_text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    text = str(v)
    # Most values are numbers and colours: escape only what needs it (charts are drawn by the
    # ten thousand; html.escape on every attribute was a third of a timeline's cost).
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return html.escape(text)
    return text


def tag(name: str, content: str = "", **attrs: Any) -> str:
    """One SVG element. Attribute names: ``_`` -> ``-`` (``class_`` -> ``class``); values are
    escaped, floats rounded to 0.1 px; ``content`` must already be markup (escape text first)."""
    names = _ATTR_NAMES
    parts = [name]
    for key, v in attrs.items():
        if v is not None:
            attr = names.get(key) or names.setdefault(key, key.rstrip("_").replace("_", "-"))
            parts.append(f'{attr}="{_attr_text(v)}"')
    head = " ".join(parts)
    return f"<{head}>{content}</{name}>" if content else f"<{head}/>"


def _svg(chart_id: str, title: str, desc: str, body: list[str], height: int = H) -> Markup:
    cid = str(escape(chart_id))
    head = (
        f'<svg class="chart" id="{cid}" viewBox="0 0 {W} {height}" role="img" '
        f'aria-labelledby="{cid}-t {cid}-d">'
        f'<title id="{cid}-t">{escape(title)}</title><desc id="{cid}-d">{escape(desc)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _axes(
    x: Axis, y: Axis, x_label: str, y_label: str, x_ticks: Sequence[float] | None = None
) -> list[str]:
    """Grid, axis lines, tick labels and axis titles. Grid and axes are one path each and tick
    labels plain f-strings (numbers only): a site draws tens of thousands of axes."""
    y_ticks = [(t, y(t)) for t in y.ticks()]
    x_pos = [(t, x(t)) for t in (x_ticks if x_ticks is not None else x.ticks())]
    grid = "".join(f"M{x.p0:.1f} {py:.1f}H{x.p1:.1f}" for _, py in y_ticks)
    grid += "".join(f"M{px:.1f} {y.p0:.1f}V{y.p1:.1f}" for _, px in x_pos)
    out = [
        '<g class="axes">',
        f'<path class="grid" d="{grid}" fill="none"/>' if grid else "",
        f'<path class="axis" d="M{x.p0:.1f} {y.p1:.1f}V{y.p0:.1f}H{x.p1:.1f}" fill="none"/>',
    ]
    out += [
        f'<text class="tick" x="{x.p0 - 6:.1f}" y="{py:.1f}" text-anchor="end" dy="0.32em">'
        f"{fmt_num(t)}</text>"
        for t, py in y_ticks
    ]
    out += [
        f'<text class="tick" x="{px:.1f}" y="{y.p0 + 16:.1f}" text-anchor="middle">'
        f"{fmt_num(t)}</text>"
        for t, px in x_pos
    ]
    x_text = escape(x_label + (" (log)" if x.log else ""))
    y_text = escape(y_label + (" (log)" if y.log else ""))
    mid_x, mid_y = (x.p0 + x.p1) / 2, (y.p0 + y.p1) / 2
    out.append(
        f'<text class="label" x="{mid_x:.1f}" y="{y.p0 + 38:.1f}" text-anchor="middle">'
        f"{x_text}</text>"
    )
    out.append(
        f'<text class="label" transform="translate(16 {mid_y:.1f}) rotate(-90)" '
        f'text-anchor="middle">{y_text}</text></g>'
    )
    return out


LEGEND_MAX = 16


def _legend(entries: list[tuple[str, str, str]], x0: float = W - M_RIGHT + 16) -> list[str]:
    """entries: (label, colour, shape) with shape circle | hollow | line | dashed | band."""
    out = ['<g class="legend">']
    for i, (label, colour, shape) in enumerate(entries[:LEGEND_MAX]):
        y = float(M_TOP + 8 + i * 18)
        if shape == "circle":
            out.append(tag("circle", cx=x0 + 5, cy=y, r="5", fill=colour))
        elif shape == "hollow":
            out.append(
                tag(
                    "circle",
                    cx=x0 + 5,
                    cy=y,
                    r="4.5",
                    fill="none",
                    stroke=colour,
                    stroke_width="1.5",
                )
            )
        elif shape == "band":
            out.append(
                tag(
                    "rect", x=x0, y=y - 6, width="12", height="12", fill=colour, fill_opacity="0.35"
                )
            )
        else:
            dash = "4 3" if shape == "dashed" else None
            out.append(
                tag(
                    "line",
                    x1=x0,
                    x2=x0 + 14,
                    y1=y,
                    y2=y,
                    stroke=colour,
                    stroke_width="2",
                    stroke_dasharray=dash,
                )
            )
        text = label if len(label) <= 24 else label[:23] + "…"
        out.append(tag("text", escape(text), class_="legend-text", x=x0 + 20, y=y, dy="0.32em"))
    if len(entries) > LEGEND_MAX:
        more = f"+{len(entries) - LEGEND_MAX} more"
        out.append(
            tag("text", more, class_="legend-text", x=x0, y=float(M_TOP + 8 + LEGEND_MAX * 18))
        )
    out.append("</g>")
    return out


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Measured points no other measured point beats on both axes (higher x, lower y), by x."""
    front: list[Point] = []
    best = math.inf
    for p in sorted((p for p in points if not p.estimate), key=lambda p: (-p.x, p.y)):
        if p.y < best:
            front.append(p)
            best = p.y
    return sorted(front, key=lambda p: p.x)


def _colours(groups: Iterable[str]) -> dict[str, str]:
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(sorted(set(groups)))}


def _points(pairs: Iterable[tuple[float, float]]) -> str:
    return " ".join(f"{_f(px)},{_f(py)}" for px, py in pairs)


def _whisker(px: float, low: float, high: float, colour: str) -> str:
    return tag("line", class_="ci", x1=px, x2=px, y1=low, y2=high, stroke=colour)


def mark_style(estimate: bool, emphasised: bool, colour: str | None) -> dict[str, str]:
    """Attributes of one experiment's mark: estimates hollow grey (their inside still takes the
    click: ``pointer-events: visible``), measured ones filled in their group's colour and larger
    when ``emphasised`` (on the front). ``colour`` is the group's (None for an estimate: groups
    are coloured by their measured experiments only)."""
    if estimate:
        return {"class_": "mark estimate", "r": "5", "fill": "none", "stroke": ESTIMATE_COLOUR,
                "stroke_width": "1.5", "pointer_events": "visible"}  # fmt: skip
    assert colour is not None, "a measured mark needs its group's colour"
    return {"class_": "mark", "r": "6" if emphasised else "4.5", "fill": colour, "stroke": "#fff"}


def _linked_circle(href: str, tip: str, **attrs: Any) -> str:
    """A circle that links to an experiment page, its tooltip in an SVG <title>."""
    return tag("a", tag("circle", f"<title>{escape(tip)}</title>", **attrs), href=href)


def pareto_chart(points: Sequence[Point], chart_id: str = "pareto") -> Markup:
    """Energy per output token vs throughput, one mark per experiment, with the Pareto front of
    the measured ones. Estimates are drawn hollow and grey and take no part in the front."""
    pts = [p for p in points if p.x > 0 and p.y > 0]
    if not pts:
        return Markup(
            '<p class="empty">No experiment has both an energy and a throughput figure.</p>'
        )
    x = Axis.fit((p.x for p in pts), M_LEFT, W - M_RIGHT)
    ys = [v for p in pts for v in (p.y, p.y_low, p.y_high) if v and v > 0]
    y = Axis.fit(ys, H - M_BOTTOM, M_TOP)
    colours = _colours(p.group for p in pts if not p.estimate)
    body = _axes(x, y, "throughput (output tokens/s)", "energy per output token (J, gross)")
    front = pareto_front(pts)
    if len(front) > 1:
        line = _points((x(p.x), y(p.y)) for p in front)
        body.append(
            tag(
                "polyline",
                class_="front",
                points=line,
                fill="none",
                stroke="#444",
                stroke_width="1.5",
                stroke_dasharray="6 4",
            )
        )
    body.append('<g class="marks">')
    on_front = {id(p) for p in front}
    for p in sorted(pts, key=lambda p: not p.estimate):  # measured drawn last, on top
        cx, cy = x(p.x), y(p.y)
        tip = f"{p.label}: {fmt_num(p.y)} J/token, {fmt_num(p.x)} tok/s"
        tip += " (estimate)" if p.estimate else (" (Pareto front)" if id(p) in on_front else "")
        if p.y_low is not None and p.y_high is not None and p.y_low > 0:
            body.append(_whisker(cx, y(p.y_low), y(p.y_high), "#666"))
        style = mark_style(p.estimate, id(p) in on_front, colours.get(p.group))
        body.append(_linked_circle(p.href, tip, cx=cx, cy=cy, **style))
    body.append("</g>")
    legend = [(g, c, "circle") for g, c in colours.items()]
    if any(p.estimate for p in pts):
        legend.append(("estimate (not ranked)", ESTIMATE_COLOUR, "hollow"))
    if len(front) > 1:
        legend.append(("Pareto front (measured)", "#444", "dashed"))
    body += _legend(legend)
    desc = (
        f"{len(pts)} experiments; {len(front)} on the Pareto front of measured energy vs "
        "throughput (lower energy per token and higher throughput are better)."
    )
    return _svg(chart_id, "Energy per output token vs throughput", desc, body)


def batch_chart(series: Sequence[Series], title: str, chart_id: str) -> Markup:
    """Mean J/output token (with 95% CI whiskers) against batch size, one line per series."""
    series = [s for s in series if any(st.mean for _, st, _ in s.points)]
    if not series:
        return Markup('<p class="empty">No energy figures to plot.</p>')
    xs = sorted({b for s in series for b, _, _ in s.points if b > 0})
    ys = [
        v
        for s in series
        for _, st, _ in s.points
        for v in (st.mean, st.low, st.high)
        if v and v > 0
    ]
    x = Axis.fit(xs, M_LEFT, W - M_RIGHT, log=len(xs) > 1 and xs[-1] / xs[0] >= 4)
    if len(xs) == 1:
        x = Axis(xs[0] * 0.5, xs[0] * 1.5, M_LEFT, W - M_RIGHT)
    y = Axis.fit(ys, H - M_BOTTOM, M_TOP)
    body = _axes(x, y, "batch size", "energy per output token (J, gross)", x_ticks=xs)
    legend = []
    body.append('<g class="marks">')
    for i, s in enumerate(series):
        colour = ESTIMATE_COLOUR if s.estimate else PALETTE[i % len(PALETTE)]
        pts = sorted(
            (
                (b, st.mean, st, href)
                for b, st, href in s.points
                if st.mean and st.mean > 0 and b > 0
            ),
            key=lambda p: (p[0], p[1]),
        )
        if len(pts) > 1:
            body.append(
                tag(
                    "polyline",
                    points=_points((x(b), y(m)) for b, m, _, _ in pts),
                    fill="none",
                    stroke=colour,
                    stroke_width="2",
                    stroke_dasharray="5 4" if s.estimate else None,
                )
            )
        for b, m, st, href in pts:
            cx, cy = x(b), y(m)
            if st.low is not None and st.high is not None and st.low > 0:
                body.append(_whisker(cx, y(st.low), y(st.high), colour))
            body.append(
                _linked_circle(
                    href,
                    f"{s.label}, batch {b:g}: {fmt_num(m)} J/token",
                    class_="mark",
                    cx=cx,
                    cy=cy,
                    r="4",
                    fill="#fff" if s.estimate else colour,
                    stroke=colour,
                    stroke_width="1.5",
                )
            )
        shape = "dashed" if s.estimate else "line"
        legend.append((s.label + (" (estimate)" if s.estimate else ""), colour, shape))
    body.append("</g>")
    body += _legend(legend)
    desc = f"{len(series)} series of energy per token against batch size."
    return _svg(chart_id, title, desc, body)


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
) -> Markup:
    """Power over the window, one line per energy domain, prefill and decode intervals shaded
    (from the request timings), the idle baseline as a dashed line."""
    series = power_series(samples)
    ends = [duration_s or 0.0, *(b[2] for b in batches)]
    t_end = max([*ends, *(t for line in series.values() for t, _ in line)])
    if t_end <= 0:
        return Markup('<p class="empty">No timeline or request timings recorded.</p>')
    x = Axis(0.0, t_end, M_LEFT, W - M_RIGHT)
    ys = [p for line in series.values() for _, p in line]
    if idle_power_w is not None:
        ys.append(idle_power_w)
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
    body.append("</g>")
    body += _legend(legend)
    what = "power timeline" if series else "request phases only (no power timeline recorded)"
    desc = f"{what}; {len(batches)} batches over {t_end:.3g} s."
    return _svg(chart_id, title, desc, body)
