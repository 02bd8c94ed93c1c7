"""Number formatting for tables and the leaderboard's cells."""

from __future__ import annotations

import html

from lembench.report.charts import fmt_num
from lembench.report.data import Stat

DASH = "–"


def esc(text: str) -> str:
    """HTML-escaped ``text`` (quotes included); the string itself when nothing needs escaping,
    which is most of them (cheaper than markupsafe's escape for the 10k-row tables)."""
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return html.escape(text)
    return text


def sig(v: float | None) -> str:
    """About three significant digits, without exponents for everyday magnitudes."""
    if v is None:
        return DASH
    a = abs(v)
    if a >= 1e6:
        return fmt_num(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def value(v: float | None, kind: str = "sig") -> str:
    """A number in a column's unit: ``ms`` (from seconds), ``pct`` (from a fraction), ``si``."""
    if v is None:
        return DASH
    if kind == "ms":
        return sig(v * 1000)
    if kind == "pct":
        return f"{v * 100:.1f}%"
    if kind == "si":
        return fmt_num(v)
    return sig(v)


def stat_html(st: Stat, kind: str = "sig", ci: bool = True) -> str:
    """``mean ± half-width`` of the 95% CI as HTML (numbers only: nothing to escape)."""
    text = value(st.mean, kind)
    if ci and st.mean is not None and st.half_width is not None:
        return f'{text}<span class="ci"> ± {value(st.half_width, kind)}</span>'
    return text


def stat_title(st: Stat, kind: str = "sig") -> str:
    """Tooltip: the interval and n."""
    if st.mean is None:
        return "no value"
    if st.low is None or st.high is None:
        return f"n = {st.n}" + (" (no interval from one value)" if st.n == 1 else "")
    return f"95% CI {value(st.low, kind)} to {value(st.high, kind)}, n = {st.n}"


def sort_key(v: float | None) -> str:
    """``data-v`` value: repr keeps full precision; '' for missing (sorted last)."""
    return "" if v is None else repr(float(v))
