"""The accuracy-vs-energy chart in headless Chromium: drawn on the index and the charts page, its
marks visible and linked to experiment pages, nothing requested outside the site folder."""

from __future__ import annotations

import pytest

from lembench.report import build_site
from lembench.report.synthetic import config, result, write_run
from tests.browser.conftest import Site
from tests.helpers.quality_results import humaneval_run

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """SYNTHETIC HumanEval experiments (measured and estimated energy) beside an unscored one."""
    root = tmp_path_factory.mktemp("quality-results")
    for c, p in enumerate([[True, True, False, False], [True, True, True, False]], 1):
        write_run(root, humaneval_run("synthetic/he-a", p, cycle=c, cycles=2))
        write_run(root, humaneval_run("synthetic/he-b", p[:3], cycle=c, cycles=2, batch_size=1))
        write_run(root, humaneval_run("synthetic/he-c", p, cycle=c, cycles=2, estimate=True))
    write_run(root, result(config("synthetic/plain", "vllm", "bf16", 2))[0])
    summary = build_site(root, tmp_path_factory.mktemp("quality") / "site")
    return Site(summary.out, summary.experiments)


def test_accuracy_chart_renders_with_linked_points(page, scored) -> None:
    p, watch = page
    p.goto(scored.url())
    marks = p.locator("svg#accuracy-token a .mark")
    assert marks.count() == 3
    for i in range(marks.count()):
        box = marks.nth(i).bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0
    assert p.locator("svg#accuracy-token .mark.estimate").count() == 1
    p.goto(scored.url("charts.html"))
    assert p.locator("svg#accuracy-token a .mark").count() == 3
    assert p.locator("svg#accuracy-solved a .mark").count() == 3
    # A mark is a link to its experiment page, which has the quality section.
    p.locator("svg#accuracy-solved a").first.click()
    p.wait_for_load_state("load")
    assert "/experiments/" in p.url
    assert p.locator("#quality-h").inner_text().startswith("Quality: humaneval pass@1")
    p.locator("details.per-task summary").click()
    assert p.locator("table.per-task tbody tr").first.is_visible()
    watch.check()
