"""What a chart's marks look like, the same on every chart of the site: one colour per backend,
one shape per precision, hollow marks for estimated energy, and confidence whiskers that are
always drawn (clipped to the plot with an arrow where they leave it, never dropped).

A reader who learned on the Pareto chart that vLLM is orange and fp8 a triangle reads the batch,
accuracy and trade-off charts without a second legend lookup.
"""

from __future__ import annotations

import html
import math
import zlib
from typing import TYPE_CHECKING, Any

from markupsafe import escape

if TYPE_CHECKING:
    from lembench.report.charts import Axis

#: Okabe-Ito colours (distinguishable with the common colour-vision deficiencies).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: Fixed colours of the backends lembench ships, so a backend keeps its colour across charts,
#: pages and sites whatever else is in the data.
BACKEND_COLOURS = {
    "pytorch": "#0072B2",
    "vllm": "#D55E00",
    "tensorrt-llm": "#009E73",
    "llamacpp": "#CC79A7",
    "openai": "#E69F00",
    "mlx": "#56B4E9",
}
#: Colours of other (third-party) backends: picked by a stable hash of the name.
OTHER_COLOURS = ("#000000", "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF", "#9467BD")
ESTIMATE_COLOUR = "#888888"

#: Shapes by precision family; anything else is a circle.
SHAPES = ("circle", "square", "triangle", "diamond")
_PRECISION_SHAPES = {
    "fp32": "square",
    "float32": "square",
    "bf16": "circle",
    "fp16": "circle",
    "float16": "circle",
    "bfloat16": "circle",
    "fp8": "triangle",
    "int8": "triangle",
    "int4": "diamond",
    "nf4": "diamond",
    "fp4": "diamond",
    # Engines' quantisation options (suite ``<backend>.quantization``), by stored width.
    "bnb_int8": "triangle",
    "w8a8_int8": "triangle",
    "w8a8_fp8": "triangle",
    "experts_int8": "triangle",
    "fp8_e4m3": "triangle",
    "int8_sq": "triangle",
    "int8_wo": "triangle",
    "int4_wo": "diamond",
    "bnb_nf4": "diamond",
    "bnb_fp4": "diamond",
    "awq": "diamond",
    "awq_marlin": "diamond",
    "gptq": "diamond",
    "gptq_marlin": "diamond",
    "int4_awq": "diamond",
    "w4a16": "diamond",
}


def backend_colour(backend: str) -> str:
    """The colour of ``backend`` on every chart."""
    fixed = BACKEND_COLOURS.get(backend.lower())
    if fixed is not None:
        return fixed
    return OTHER_COLOURS[zlib.crc32(backend.encode("utf-8")) % len(OTHER_COLOURS)]


def precision_shape(precision: str) -> str:
    """The mark shape of ``precision`` (circle for 16-bit floats, square fp32, triangle 8-bit,
    diamond 4-bit, circle for anything unknown)."""
    p = precision.lower()
    if p in _PRECISION_SHAPES:
        return _PRECISION_SHAPES[p]
    if p.startswith(("q4", "iq4", "gguf:q4")):
        return "diamond"
    if p.startswith(("q8", "gguf:q8")):
        return "triangle"
    return "circle"


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


def shape(kind: str, cx: float, cy: float, r: float, content: str = "", **attrs: Any) -> str:
    """A mark of ``kind`` (one of SHAPES) centred on (cx, cy), about ``r`` in radius."""
    if kind == "square":
        s = r * 1.6
        return tag("rect", content, x=cx - s / 2, y=cy - s / 2, width=s, height=s, **attrs)
    if kind == "triangle":
        h = r * 1.25
        pts = (
            f"{cx:.1f},{cy - h:.1f} {cx + h:.1f},{cy + h * 0.8:.1f} {cx - h:.1f},{cy + h * 0.8:.1f}"
        )
        return tag("polygon", content, points=pts, **attrs)
    if kind == "diamond":
        h = r * 1.3
        pts = (
            f"{cx:.1f},{cy - h:.1f} {cx + h:.1f},{cy:.1f} {cx:.1f},{cy + h:.1f} "
            f"{cx - h:.1f},{cy:.1f}"
        )
        return tag("polygon", content, points=pts, **attrs)
    return tag("circle", content, cx=cx, cy=cy, r=f"{r:g}", **attrs)


def mark_style(estimate: bool, emphasised: bool, colour: str | None) -> dict[str, Any]:
    """Attributes of one experiment's mark: estimates hollow in their backend's colour (their
    inside still takes the click: ``pointer-events: visible``), measured ones filled and larger
    when ``emphasised`` (on the front). The radius is returned as ``r``."""
    colour = colour or ESTIMATE_COLOUR
    if estimate:
        return {"class_": "mark estimate", "r": 5.0, "fill": "none", "stroke": colour,
                "stroke_width": "1.8", "pointer_events": "visible"}  # fmt: skip
    return {"class_": "mark", "r": 6.0 if emphasised else 4.5, "fill": colour, "stroke": "#fff"}


def linked_mark(href: str, tip: str, kind: str, cx: float, cy: float, **style: Any) -> str:
    """A mark that links to an experiment page, its hover text in an SVG <title>."""
    r = float(style.pop("r", 4.5))
    return tag("a", shape(kind, cx, cy, r, f"<title>{escape(tip)}</title>", **style), href=href)


def whisker(
    axis: Axis, at: float, low: float | None, high: float | None, colour: str, vertical: bool = True
) -> str:
    """A 95% CI whisker from ``low`` to ``high`` (data units) at pixel ``at`` on the other axis.

    Every interval is drawn: the part inside the axis range as a line and, where the interval
    leaves the plot (a lower bound <= 0 on a log axis, or beyond a range scaled on the points),
    a small arrowhead at the edge says it goes on (class ``clip``). '' when there is no interval.
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    lo_clipped = low < axis.lo or (axis.log and low <= 0)
    hi_clipped = high > axis.hi
    a = axis(max(low, axis.lo) if not (axis.log and low <= 0) else axis.lo)
    b = axis(min(high, axis.hi))
    if vertical:
        out = [tag("line", class_="ci", x1=at, x2=at, y1=a, y2=b, stroke=colour)]
    else:
        out = [tag("line", class_="ci", x1=a, x2=b, y1=at, y2=at, stroke=colour)]
    for clipped, edge, direction in ((lo_clipped, a, -1), (hi_clipped, b, 1)):
        if not clipped:
            continue
        # Pixel direction of "further out": axes may run either way on screen.
        sign = 1 if (axis.p1 - axis.p0) * direction > 0 else -1
        tip, base = edge + sign * 1.0, edge - sign * 5.0
        if vertical:
            pts = f"{at - 3.5:.1f},{base:.1f} {at + 3.5:.1f},{base:.1f} {at:.1f},{tip:.1f}"
        else:
            pts = f"{base:.1f},{at - 3.5:.1f} {base:.1f},{at + 3.5:.1f} {tip:.1f},{at:.1f}"
        out.append(tag("polygon", class_="clip", points=pts, fill=colour))
    return "".join(out)
