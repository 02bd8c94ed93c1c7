"""The generated site in headless Chromium: loads cleanly from file://, requests nothing outside
its folder, sorts, filters, draws charts, works without JavaScript and renders hostile strings as
text. Also saves docs/img/leaderboard.png for the README, from real results only."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"  # as in conftest
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "leaderboard.png"
ROWS = "table.leaderboard tbody tr"


def visible_rows(p) -> int:
    return p.locator(f"{ROWS}:visible").count()


def column_values(p, section: str, index: int) -> list[float | None]:
    cells = p.locator(f"section#{section} {ROWS} > :nth-child({index + 1})")
    values = [cells.nth(i).get_attribute("data-v") for i in range(cells.count())]
    return [float(v) if v else None for v in values]


def header_index(p, section: str, label: str) -> int:
    labels = p.locator(f"section#{section} thead th").all_inner_texts()
    return next(i for i, t in enumerate(labels) if t.strip().startswith(label))


def test_every_page_loads_without_errors_or_outside_requests(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url())
    experiment = p.locator(f"{ROWS} a").first.get_attribute("href")
    for target in ("index.html", "charts.html", "methodology.html", experiment):
        p.goto(showcase.url(target))
        p.wait_for_load_state("load")
    watch.check()
    assert len(watch.requests) >= 8  # pages, stylesheet and script were really loaded


def test_row_count_equals_experiments(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url())
    assert p.locator(ROWS).count() == showcase.experiments
    assert p.locator("#filters").is_visible()  # the script ran (CSP allows it from file://)
    watch.check()


def test_real_results_site_and_readme_screenshot(page, measured) -> None:
    """The README's screenshot: real CPU runs only (estimated energy, labelled as such)."""
    p, watch = page
    p.goto(measured.url())
    assert p.locator(ROWS).count() == measured.experiments
    assert "estimate" in p.locator("main").inner_text().lower()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(SCREENSHOT), full_page=False)
    watch.check()


def test_clicking_a_header_sorts_and_the_keyboard_works(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url())
    col = header_index(p, "measured", "tok/s")
    header = p.locator("section#measured thead th").nth(col)
    header.get_by_role("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    values = column_values(p, "measured", col)
    assert values == sorted(values) and len(values) > 3
    header.get_by_role("button").focus()
    p.keyboard.press("Enter")
    assert header.get_attribute("aria-sort") == "descending"
    assert column_values(p, "measured", col) == sorted(values, reverse=True)
    # Text columns sort too.
    model = p.locator("section#measured thead th").nth(header_index(p, "measured", "Backend"))
    model.get_by_role("button").click()
    nth = header_index(p, "measured", "Backend") + 1
    backends = p.locator(f"section#measured {ROWS}:visible > :nth-child({nth})").all_inner_texts()
    assert backends == sorted(backends, key=str.lower)
    watch.check()


def test_a_filter_narrows_the_rows(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url())
    p.select_option("select[name=group]", "")  # all rows
    total = visible_rows(p)
    p.select_option("select[name=backend]", "vllm")
    shown = visible_rows(p)
    assert 0 < shown < total
    backends = {
        p.locator(f"{ROWS}:visible").nth(i).get_attribute("data-backend") for i in range(shown)
    }
    assert backends == {"vllm"}
    assert f"Showing {shown} of {total}" in p.locator("#filter-status").inner_text()
    p.select_option("select[name=hardware]", "NVIDIA L4")  # no vllm row on an L4: nothing left
    assert visible_rows(p) == 0
    p.get_by_role("button", name="Clear filters").click()
    p.wait_for_function(f"document.querySelectorAll('{ROWS}:not([hidden])').length === {total}")
    watch.check()


def test_charts_are_drawn(page, showcase) -> None:
    p, watch = page
    for target, least in (("index.html", 1), ("charts.html", 3)):
        p.goto(showcase.url(target))
        assert p.locator("svg.chart").count() >= least
        marks = p.locator("svg.chart .mark")
        assert marks.count() > 5
        box = marks.first.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0
    p.goto(showcase.url())
    p.goto(showcase.url(p.locator(f"section#measured {ROWS} a").first.get_attribute("href")))
    assert p.locator("svg#timeline .mark.line").count() >= 1  # power line from timeline.jsonl
    assert p.locator("svg#timeline rect.decode").count() >= 1
    watch.check()


def test_readable_without_javascript(browser, showcase) -> None:
    context = browser.new_context(java_script_enabled=False)
    p = context.new_page()
    p.goto(showcase.url())
    assert p.locator(ROWS).count() == showcase.experiments
    assert not p.locator("#filters").is_visible()  # filters need the script: hidden without it
    assert p.locator("thead th button").count() == 0
    assert p.locator("svg.chart .mark").count() > 5
    context.close()


def test_hostile_strings_are_inert_text(page, hostile) -> None:
    p, watch = page
    p.goto(hostile.url())
    assert p.locator(ROWS).count() == hostile.experiments
    link = p.locator("table.leaderboard").get_by_role("link", name=XSS)
    assert link.is_visible() and link.inner_text() == XSS
    assert p.locator("main img").count() == 0
    link = link.get_attribute("href")
    p.goto(hostile.url(link))
    assert p.locator("h1").inner_text().startswith(XSS)
    assert p.locator("table.runs").get_by_text("<script>alert(2)</script>").first.is_visible()
    p.goto(hostile.url("charts.html"))
    p.wait_for_timeout(200)
    assert watch.dialogs == []
    watch.check()
