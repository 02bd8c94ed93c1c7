"""Self-contained SVG charts, drawn in Python (no chart library, no script, no external request).

Each function returns inline SVG markup (``markupsafe.Markup``) for a jinja2 template. Every piece
of user-supplied text goes through ``escape``; numbers are formatted by us. No ``xmlns`` attribute:
inline SVG in HTML does not need one, and the site must not name any other host.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from lembench.report.marks import (
    ESTIMATE_COLOUR,
    PALETTE,
    backend_colour,
    linked_mark,
    mark_style,
    precision_shape,
    shape,
    tag,
    whisker,
)

__all__ = ["ESTIMATE_COLOUR", "PALETTE", "mark_style", "tag"]

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
    group: str  # colour legend entry: the backend (one colour per backend on every chart)
    estimate: bool = False
    precision: str = ""  # the mark's shape (marks.precision_shape)
    y_low: float | None = None
    y_high: float | None = None


@dataclass
class Series:
    """A line of points (x, Stat of y, href) with a legend label."""

    label: str
    #: (x, Stat of y, href) or (x, Stat of y, href, hover note such as ", batch 8").
    points: list[tuple[Any, ...]] = field(default_factory=list)
    estimate: bool = False
    backend: str = ""  # the line's colour (marks.backend_colour)
    precision: str = ""  # the marks' shape (marks.precision_shape)


def _f(v: float) -> str:
    return f"{v:.1f}"


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
    """entries: (label, colour, kind) with kind circle | square | triangle | diamond | hollow |
    line | dashed | band."""
    out = ['<g class="legend">']
    for i, (label, colour, kind) in enumerate(entries[:LEGEND_MAX]):
        y = float(M_TOP + 8 + i * 18)
        if kind in ("circle", "square", "triangle", "diamond"):
            out.append(shape(kind, x0 + 5, y, 5.0, fill=colour))
        elif kind == "hollow":
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
        elif kind == "band":
            out.append(
                tag(
                    "rect", x=x0, y=y - 6, width="12", height="12", fill=colour, fill_opacity="0.35"
                )
            )
        else:
            dash = "4 3" if kind == "dashed" else None
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
    """Legend entry -> colour, for groups that are backends: the same colour on every chart."""
    return {g: backend_colour(g) for g in sorted(set(groups))}


def _points(pairs: Iterable[tuple[float, float]]) -> str:
    return " ".join(f"{_f(px)},{_f(py)}" for px, py in pairs)


def _whisker(px: float, low: float, high: float, colour: str) -> str:
    """A whisker between two pixel positions (callers that clip themselves)."""
    return tag("line", class_="ci", x1=px, x2=px, y1=low, y2=high, stroke=colour)


def _linked_circle(href: str, tip: str, **attrs: Any) -> str:
    """A round mark that links to an experiment page, its tooltip in an SVG <title>."""
    return linked_mark(href, tip, "circle", float(attrs.pop("cx")), float(attrs.pop("cy")), **attrs)


def shape_legend(precisions: Iterable[str]) -> list[tuple[str, str, str]]:
    """Legend entries for the mark shapes in use (one per shape, naming its precisions)."""
    by_shape: dict[str, list[str]] = {}
    for p in sorted(set(precisions)):
        by_shape.setdefault(precision_shape(p), []).append(p)
    if len(by_shape) < 2:
        return []  # one shape says nothing
    return [(", ".join(ps), "#555", kind) for kind, ps in by_shape.items()]


def _estimate_legend(any_estimate: bool) -> list[tuple[str, str, str]]:
    return [("hollow: estimate", ESTIMATE_COLOUR, "hollow")] if any_estimate else []


def pareto_chart(
    points: Sequence[Point],
    chart_id: str = "pareto",
    title: str = "Energy per output token vs throughput",
) -> Markup:
    """Energy per output token vs throughput, one mark per experiment (colour: backend, shape:
    precision), with the Pareto front of the measured ones. Estimates are drawn hollow and take
    no part in the front. The axes are scaled on the points; a whisker that leaves the plot is
    clipped at its edge with an arrow (marks.whisker), never dropped."""
    pts = [p for p in points if p.x > 0 and p.y > 0]
    if not pts:
        return Markup(
            '<p class="empty">No experiment has both an energy and a throughput figure.</p>'
        )
    x = Axis.fit((p.x for p in pts), M_LEFT, W - M_RIGHT)
    y = Axis.fit([p.y for p in pts], H - M_BOTTOM, M_TOP)
    colours = _colours(p.group for p in pts)
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
    # Whiskers first, under every mark, and deaf to the pointer.
    body.append('<g class="whiskers" pointer-events="none">')
    body += [whisker(y, x(p.x), p.y_low, p.y_high, "#666") for p in pts]
    body.append('</g><g class="marks">')
    on_front = {id(p) for p in front}
    for p in sorted(pts, key=lambda p: not p.estimate):  # measured drawn last, on top
        cx, cy = x(p.x), y(p.y)
        tip = f"{p.label}: {fmt_num(p.y)} J/token, {fmt_num(p.x)} tok/s"
        if p.y_low is not None and p.y_high is not None:
            tip += f" (95% CI {fmt_num(p.y_low)} to {fmt_num(p.y_high)})"
        tip += " (estimate)" if p.estimate else (" (Pareto front)" if id(p) in on_front else "")
        style = mark_style(p.estimate, id(p) in on_front, colours.get(p.group))
        body.append(linked_mark(p.href, tip, precision_shape(p.precision), cx, cy, **style))
    body.append("</g>")
    legend = [(g, c, "circle") for g, c in colours.items()]
    legend += shape_legend(p.precision for p in pts if p.precision)
    legend += _estimate_legend(any(p.estimate for p in pts))
    if len(front) > 1:
        legend.append(("Pareto front (measured)", "#444", "dashed"))
    body += _legend(legend)
    desc = (
        f"{len(pts)} experiments; {len(front)} on the Pareto front of measured energy vs "
        "throughput (lower energy per token and higher throughput are better)."
    )
    return _svg(chart_id, title, desc, body)


def batch_chart(
    series: Sequence[Series],
    title: str,
    chart_id: str,
    x_label: str = "batch size",
    x_name: str = "batch",
) -> Markup:
    """Mean J/output token (95% CI whiskers, clipped at the plot's edge, never dropped) against
    ``x`` (batch size by default), one line per series in its backend's colour and its
    precision's shape; estimated series dashed with hollow marks."""
    series = [s for s in series if any(st.mean for _, st, *_ in s.points)]
    if not series:
        return Markup('<p class="empty">No energy figures to plot.</p>')
    xs = sorted({b for s in series for b, *_ in s.points if b > 0})
    ys = [st.mean for s in series for _, st, *_ in s.points if st.mean and st.mean > 0]
    x = Axis.fit(xs, M_LEFT, W - M_RIGHT, log=len(xs) > 1 and xs[-1] / xs[0] >= 4)
    if len(xs) == 1:
        x = Axis(xs[0] * 0.5, xs[0] * 1.5, M_LEFT, W - M_RIGHT)
    y = Axis.fit(ys, H - M_BOTTOM, M_TOP)
    is_batch = x_name == "batch"
    body = _axes(
        x, y, x_label, "energy per output token (J, gross)", x_ticks=xs if is_batch else None
    )
    legend = []
    lines, marks = [], []
    for i, s in enumerate(series):
        colour = backend_colour(s.backend) if s.backend else PALETTE[i % len(PALETTE)]
        kind = precision_shape(s.precision)
        pts = sorted(
            (
                (p[0], p[1].mean, p[1], p[2], p[3] if len(p) > 3 else "")
                for p in s.points
                if p[1].mean and p[1].mean > 0 and p[0] > 0
            ),
            key=lambda p: (p[0], p[1]),
        )
        if len(pts) > 1:
            lines.append(
                tag(
                    "polyline",
                    points=_points((x(b), y(m)) for b, m, *_ in pts),
                    fill="none",
                    stroke=colour,
                    stroke_width="2",
                    stroke_dasharray="5 4" if s.estimate else None,
                )
            )
        for b, m, st, href, note in pts:
            cx, cy = x(b), y(m)
            lines.append(whisker(y, cx, st.low, st.high, colour))
            where = f"{x_name} {b:g}" if is_batch else f"{x_name} {fmt_num(b)}"
            tip = f"{s.label}, {where}{note}: {fmt_num(m)} J/token"
            if st.low is not None and st.high is not None:
                tip += f" (95% CI {fmt_num(st.low)} to {fmt_num(st.high)})"
            marks.append(
                linked_mark(
                    href,
                    tip + (" (estimate)" if s.estimate else ""),
                    kind,
                    cx,
                    cy,
                    class_="mark estimate" if s.estimate else "mark",
                    r=4.5,
                    fill="#fff" if s.estimate else colour,
                    stroke=colour,
                    stroke_width="1.5",
                )
            )
        line = "dashed" if s.estimate else "line"
        legend.append((s.label + (" (estimate)" if s.estimate else ""), colour, line))
    legend += shape_legend(s.precision for s in series if s.precision)
    body += ['<g class="lines">', *lines, '</g><g class="marks">', *marks, "</g>"]
    body += _legend(legend)
    desc = f"{len(series)} series of energy per token against {x_label}."
    return _svg(chart_id, title, desc, body)
