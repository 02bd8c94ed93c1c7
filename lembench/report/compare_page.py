"""The site's pages of ``lembench compare`` (``lembench report --compare A B``): one page per pair
of experiments or suites, the same numbers as the terminal view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from lembench.report.fmt import sig
from lembench.report.pages import slug
from lembench.report.table import Row
from lembench.results.compare import CompareResult


def compare_links(compared: list[tuple[str, str, CompareResult]]) -> list[tuple[str, str]]:
    """(label, site-relative path) of every compare page, in the order asked for."""
    return [
        (f"{a} vs {b}", f"compare/{i}-{slug(a)[:24]}--{slug(b)[:24]}.html")
        for i, (a, b, _) in enumerate(compared, start=1)
    ]


def compare_pages(
    env: jinja2.Environment,
    site: Path,
    compared: list[tuple[str, str, CompareResult]],
    common: dict[str, Any],
    rows: list[Row],
) -> list[str]:
    """Write a page for every (A, B, result); returns the site-relative paths written."""
    if not compared:
        return []
    (site / "compare").mkdir()
    pages = {r.exp.key: r.exp.page for r in rows}
    template = env.get_template("compare.html.j2")
    written = []
    for (a, b, result), (_, name) in zip(compared, compare_links(compared), strict=True):
        html = template.render(
            **common,
            root="../",
            page_title=f"Compare {a} vs {b}",
            label_a=a,
            label_b=b,
            result=result,
            pages=pages,
            fmt=sig,
        )
        (site / name).write_text(html, "utf-8")
        written.append(name)
    return written
