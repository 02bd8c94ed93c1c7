"""The report's Reproductions page: rendered from the latest records, linked from every page only
when it exists, escaped, and pointing at nothing outside the site."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

from rich.console import Console

from lembench.report import build_site
from lembench.reproduce.reference import load_study, load_study_suite
from lembench.reproduce.runner import reproduce
from tests.helpers.repro_runs import REFERENCE, store_runs, write_study
from tests.unit.test_report_site import EXTERNAL

XSS = "<script>alert(1)</script>"


def _results(tmp_path: Path, reference: dict | None = None) -> tuple[Path, object]:
    write_study(tmp_path / "studies", reference=reference)
    study = load_study(tmp_path / "studies" / "toy")
    suite = load_study_suite(study)
    results = tmp_path / "results"
    for e in suite.experiments:
        value = {1: 4.0, 2: 2.1, 4: 3.0}[e.config["batch_size"]]  # b4 off: some claims fail
        store_runs(results, suite.name, e.config, [value * f for f in (0.99, 1.0, 1.01)])
    return results, study


def _compare(study, results: Path) -> dict:
    console = Console(file=io.StringIO())
    return reproduce(study, results, console, console, compare_only=True).record


def test_page_shows_the_latest_record_with_table_verdicts_citation_and_links(tmp_path: Path):
    reference = copy.deepcopy(REFERENCE)
    reference["title"] = f"Toy {XSS}"
    reference["claims"][0]["points"][1]["verification"] = "unverified"
    results, study = _results(tmp_path, reference)
    _compare(study, results)
    latest = _compare(study, results)  # two records: the page shows the newer one only
    build_site(results, tmp_path / "site")
    page = (tmp_path / "site" / "reproductions.html").read_text("utf-8")

    assert latest["record_id"] in page
    assert page.count('<section id="toy"') == 1
    assert XSS not in page and "Toy &lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Citation block; the source URL is text, not a link to another host.
    assert "A. Author, B. Author (2025-01-01)" in page and "<cite>Toy energy figures</cite>" in page
    assert "<code>https://example.org/toy</code>" in page
    assert EXTERNAL.search(page) is None
    # Verdicts with their reasons, and the side-by-side values.
    assert '<span class="badge verdict-reproduced">reproduced</span>' in page  # halving
    assert '<span class="badge warn">not reproduced</span>' in page  # energy-curve
    assert "b4 / b1: 0.75 vs published 0.25 (+200%; tolerance ±20%)" in page
    assert "2 †" in page  # the unverified figure is marked
    # Every experiment link resolves to a page of the site.
    links = set(re.findall(r'href="(experiments/[^"]+)"', page))
    assert len(links) == 3
    assert all((tmp_path / "site" / link).is_file() for link in links)
    # Every page links to it.
    for name in ("index.html", "charts.html", "methodology.html", *links):
        assert 'href="reproductions.html"' in (tmp_path / "site" / name).read_text("utf-8") or (
            'href="../reproductions.html"' in (tmp_path / "site" / name).read_text("utf-8")
        )


def test_no_record_no_page_and_no_link(tmp_path: Path):
    results, _ = _results(tmp_path)
    summary = build_site(results, tmp_path / "site")
    assert not (tmp_path / "site" / "reproductions.html").exists()
    assert "reproductions.html" not in (tmp_path / "site" / "index.html").read_text("utf-8")
    assert summary.runs == 9  # the records folder is never read as runs


def test_suite_filter_keeps_only_its_records(tmp_path: Path):
    results, study = _results(tmp_path)
    _compare(study, results)
    build_site(results, tmp_path / "site", suite="repro-toy")
    assert (tmp_path / "site" / "reproductions.html").exists()
    store_runs(results, "other", {**load_study_suite(study).experiments[0].config}, [1.0])
    build_site(results, tmp_path / "site2", suite="other")
    assert not (tmp_path / "site2" / "reproductions.html").exists()
