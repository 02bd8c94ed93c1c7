"""Like with like in Chromium: the group selector and its ranks, the column chooser, whiskers that
are clipped and never dropped, one colour per backend on every chart, the compare page; saves the
README's screenshots of the index, charts and compare pages (real results only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lembench.report.marks import backend_colour

pytestmark = pytest.mark.browser

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
ROWS = "table.leaderboard tbody tr"


def test_rows_are_ranked_within_the_selected_group_only(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url())
    group = p.locator("select[name=group]").input_value()
    assert group  # a group is picked by default: like with like
    rows = p.locator(f"section#measured {ROWS}:visible")
    assert rows.count() > 3
    assert {rows.nth(i).get_attribute("data-group") for i in range(rows.count())} == {group}
    ranks = sorted(
        int(t) for t in p.locator(f"section#measured {ROWS}:visible td.rank").all_inner_texts()
    )
    assert ranks == list(range(1, rows.count() + 1))
    assert p.locator(f"section#measured {ROWS}:visible td.rating .stars").count() == rows.count()
    # The L4 group, picked from the group summary: its own rank 1.
    p.locator("button.pick-group", has_text="NVIDIA L4").click()
    l4 = p.locator(f"section#measured {ROWS}:visible")
    assert {l4.nth(i).get_attribute("data-hardware") for i in range(l4.count())} == {"NVIDIA L4"}
    assert "1" in p.locator(f"section#measured {ROWS}:visible td.rank").all_inner_texts()
    # All rows: every group, and no rank column (rows of different groups are not ranked).
    p.select_option("select[name=group]", "")
    assert p.locator(f"{ROWS}:visible").count() == showcase.experiments
    assert not p.locator("section#measured thead th[data-col=rank]").is_visible()
    assert "not ranked against each other" in p.locator("#filter-status").inner_text()
    watch.check()


def test_column_chooser_and_search(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url())
    p.select_option("select[name=group]", "")
    head = p.locator("section#measured thead th[data-col=mfu]")
    assert not head.is_visible()  # not in the default set
    p.locator(".column-chooser summary").click()
    p.locator("input[data-col=mfu]").check()
    assert head.is_visible()
    p.locator("input[data-col=j_per_request]").uncheck()
    assert not p.locator("section#measured thead th[data-col=j_per_request]").is_visible()
    p.fill("input[name=q]", "llamacpp")
    shown = p.locator(f"{ROWS}:visible")
    assert 0 < shown.count() < showcase.experiments
    assert {shown.nth(i).get_attribute("data-backend") for i in range(shown.count())} == {
        "llamacpp"
    }
    # Warnings are an icon with the codes on hover, not a wrapping column of text.
    warn = p.locator("td.warnings .badge.warn").first
    assert warn.get_attribute("title")
    watch.check()


def test_every_whisker_is_drawn_inside_its_chart(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url("charts.html"))
    drawn = 0
    for chart in ("svg[id^=pareto-]", "svg[id^=batch-]"):
        svgs = p.locator(chart)
        for i in range(svgs.count()):
            svg = svgs.nth(i)
            with_ci = svg.locator("a title", has_text="95% CI").count()
            assert svg.locator("line.ci").count() == with_ci  # every interval has its whisker
            drawn += with_ci
            box = svg.bounding_box()
            for j in range(svg.locator("line.ci").count()):
                b = svg.locator("line.ci").nth(j).bounding_box()
                assert b and box["y"] <= b["y"] and b["y"] + b["height"] <= box["y"] + box["height"]
    assert drawn > 10
    watch.check()


def test_one_colour_per_backend_on_every_chart(page, showcase) -> None:
    p, watch = page
    colours: dict[str, set[str]] = {}
    for target in ("index.html", "charts.html"):
        p.goto(showcase.url(target))
        marks = p.eval_on_selector_all(
            "svg.chart .mark:not(.estimate)",
            "els => els.map(e => [e.querySelector('title').textContent,"
            " e.getAttribute('fill') === '#fff'"
            " ? e.getAttribute('stroke') : e.getAttribute('fill')])",
        )
        for title, colour in marks:
            for backend in ("vllm", "pytorch", "llamacpp"):
                if f" · {backend} · " in title or title.startswith(f"{backend} "):
                    colours.setdefault(backend, set()).add(colour)
    assert set(colours) == {"vllm", "pytorch", "llamacpp"}
    for backend, seen in colours.items():
        assert seen == {backend_colour(backend)}, (backend, seen)
    watch.check()


def test_compare_page(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url())
    p.get_by_role("link", name="Compare").first.click()
    assert "Compare" in p.locator("h1").inner_text()
    rows = p.locator("table.compare-table tbody tr")
    assert rows.count() > 10
    j = p.locator("table.compare-table tbody tr", has_text="j_per_output_token").first
    assert "B lower (better)" in j.inner_text() and "[" in j.inner_text()
    p.locator("table.compare-table thead th").nth(4).get_by_role("button").click()  # sort by p
    assert p.locator("table.compare-table thead th").nth(4).get_attribute("aria-sort")
    watch.check()


def test_readme_screenshots_from_real_results(page, measured) -> None:
    """docs/img: the index, charts and compare pages of the real quickstart (estimated energy
    on this CPU, labelled so); no synthetic number is in a README image."""
    p, watch = page
    IMG.mkdir(parents=True, exist_ok=True)
    p.goto(measured.url())
    assert p.locator("table.group-summary tbody tr").count() >= 1
    p.screenshot(path=str(IMG / "leaderboard.png"), full_page=False)
    p.goto(measured.url("charts.html"))
    p.locator("#batch-h").scroll_into_view_if_needed()
    p.screenshot(path=str(IMG / "charts.png"), full_page=False)
    p.goto(measured.url())
    p.get_by_role("link", name="Compare").first.click()
    assert "no significant difference" in p.locator("main").inner_text()  # wide intervals
    p.screenshot(path=str(IMG / "compare.png"), full_page=False)
    watch.check()


def test_the_index_shows_the_selected_groups_pareto_chart_only(page, showcase) -> None:
    p, watch = page
    p.goto(showcase.url())
    group = p.locator("select[name=group]").input_value()
    shown = p.locator("figure.group-chart:visible")
    assert shown.count() == 1 and shown.first.get_attribute("data-group") == group
    p.select_option("select[name=group]", "")
    assert (
        p.locator("figure.group-chart:visible").count()
        == p.locator("figure.group-chart").count()
        > 1
    )
    watch.check()
