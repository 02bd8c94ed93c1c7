"""The static site: built from the real v1 results in tests/data plus synthetic v2 results (an XSS
model name, a measured/estimated pair), checked for escaping, downloads, pages, methodology entries
and the absence of any reference to another host."""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
from pathlib import Path

import pytest
from markupsafe import escape

from harness.contract.definitions import METRIC_DEFINITIONS
from harness.contract.results import validation_problem
from harness.meters.base import METHODS
from lembench.errors import UserError
from lembench.report import build_site
from lembench.report.build import MANIFEST, is_site
from lembench.report.synthetic import config, result, write_run
from lembench.suite import load_suite

DATA = Path(__file__).parent.parent / "data"
XSS = "<img src=x onerror=alert(1)>"
XSS_WARNING = "<script>alert(2)</script>"
#: A reference that would make a browser contact another host.
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|srcset|action|poster|data|xlink:href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//)"""
    r"""|(?:url\(\s*["']?\s*(?:https?:)?//)|(?:@import)""",
    re.IGNORECASE,
)


def copy_v1(root: Path) -> list[dict]:
    """The real v1 result files, laid out as the store does."""
    docs = []
    for path in sorted(DATA.glob("result-v1-*.json")):
        doc = json.loads(path.read_text("utf-8"))
        folder = root / doc["suite"] / doc["experiment_id"] / doc["run_id"]
        folder.mkdir(parents=True)
        shutil.copyfile(path, folder / "result.json")
        docs.append(doc)
    return docs


def synthetic_runs(root: Path) -> dict[str, str]:
    """Synthetic v2 runs: the XSS model (measured, with a timeline and a hostile warning), and
    one config measured on a GPU vs estimated on the CPU. Returns name -> experiment id."""
    ids = {}
    xss_cfg = config(XSS, "vllm", "bf16", 8)
    for cycle in (1, 2, 3):
        doc, samples = result(
            xss_cfg,
            cycle=cycle,
            warnings=[{"code": "throttling", "message": XSS_WARNING}],
        )
        assert validation_problem(doc) is None
        write_run(root, doc, samples)
    ids["xss"] = doc["experiment_id"]
    measured = config("synthetic/pair", "pytorch", "fp16", 4)
    estimated = config("synthetic/pair", "pytorch", "fp32", 4)
    for cycle in (1, 2, 3):
        doc, samples = result(measured, cycle=cycle, suite="synthetic-pair")
        write_run(root, doc, samples)
        ids["measured"] = doc["experiment_id"]
        doc, _ = result(
            estimated, cycle=cycle, suite="synthetic-pair", hardware=None, estimate=True
        )
        assert validation_problem(doc) is None
        write_run(root, doc)
        ids["estimated"] = doc["experiment_id"]
    return ids


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], list[dict]]:
    root = tmp_path_factory.mktemp("results")
    v1 = copy_v1(root)
    ids = synthetic_runs(root)
    out = tmp_path_factory.mktemp("sites") / "site"
    summary = build_site(root, out)
    assert summary.experiments == len(v1) + 3
    assert (summary.measured, summary.estimated, summary.unranked) == (2, 3, 1)
    return out, ids, v1


def page_of(site_dir: Path, experiment_id: str) -> str:
    (path,) = (site_dir / "experiments").glob(f"*--{experiment_id}.html")
    return path.read_text("utf-8")


def test_leaderboard_has_one_row_per_experiment_in_sections(site) -> None:
    out, ids, v1 = site
    index = (out / "index.html").read_text("utf-8")
    assert index.count("<tr data-model=") == len(v1) + 3
    sections = re.findall(r'<section class="board section-(\w+)"', index)
    assert sections == ["measured", "estimate", "none"]
    measured = index.split('id="measured"')[1].split("<section")[0]
    estimate = index.split('id="estimate"')[1].split("<section")[0]
    assert ids["measured"] in measured and ids["estimated"] in estimate
    assert ids["estimated"] not in measured
    # Ranks only for measured rows; estimates carry a badge instead of a number.
    ranks = re.findall(r'class="num rank" title="[^"]*">(\d+)</td>', measured)
    assert sorted(int(r) for r in ranks) == [1, 2]
    assert not re.findall(r'class="num rank" title="[^"]*">(\d+)</td>', estimate)
    assert estimate.count('class="badge estimate"') >= 3  # rank cell + method cell per row
    assert 'class="badge warn"' in index  # warnings are flagged


def test_user_strings_are_escaped_everywhere(site) -> None:
    out, ids, _ = site
    for path in out.rglob("*.html"):
        text = path.read_text("utf-8")
        assert XSS not in text, path
        assert XSS_WARNING not in text, path
    escaped = html.escape(XSS, quote=False)
    assert escaped in (out / "index.html").read_text("utf-8")
    page = page_of(out, ids["xss"])
    assert escaped in page
    assert html.escape(XSS_WARNING, quote=False) in page
    # The raw string is data in the downloads (JSON-encoded there, not HTML).
    rows = json.loads((out / "leaderboard.json").read_text("utf-8"))
    assert XSS in {r["model"] for r in rows}


def test_no_reference_to_any_other_host(site) -> None:
    out, _, _ = site
    for path in out.rglob("*"):
        if path.suffix in (".html", ".css", ".js", ".svg"):
            text = path.read_text("utf-8")
            assert not EXTERNAL.search(text), (path, EXTERNAL.search(text))
            assert "xmlns=" not in text  # inline SVG needs no namespace URL
    assert not list(out.glob(".*building*"))


def test_no_inline_script_style_or_event_handler(site) -> None:
    """The CSP allows only the site's own script and stylesheet; nothing inline may need more."""
    out, _, _ = site
    for path in out.rglob("*.html"):
        text = path.read_text("utf-8")
        # Tags with their quoted attribute values blanked (escaped data may say "onerror=").
        tags = [re.sub(r'"[^"]*"', '""', t) for t in re.findall(r"<[a-zA-Z][^<>]*>", text)]
        assert not [t for t in tags if re.search(r"\son[a-z]+\s*=", t, re.I)], path
        assert not [t for t in tags if re.search(r"\sstyle\s*=", t, re.I)], path
        assert re.findall(r"<script\b[^>]*>", text) == [
            '<script src="'
            + ("../" if path.parent.name == "experiments" else "")
            + 'static/leaderboard.js" defer>'
        ], path
        assert "<style" not in text and "javascript:" not in text.lower()


def test_downloads_hold_the_aggregated_table(site) -> None:
    out, ids, v1 = site
    with (out / "leaderboard.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(v1) + 3
    for col in ("j_per_output_token_mean", "j_per_output_token_ci95_low", "mfu_mean", "rank"):
        assert col in rows[0]
    by_id = {r["experiment_id"]: r for r in rows}
    assert by_id[ids["measured"]]["energy_class"] == "measured"
    assert by_id[ids["estimated"]]["energy_class"] == "estimate"
    assert by_id[ids["estimated"]]["rank"] == ""
    low = float(by_id[ids["measured"]]["j_per_output_token_ci95_low"])
    high = float(by_id[ids["measured"]]["j_per_output_token_ci95_high"])
    assert low < float(by_id[ids["measured"]]["j_per_output_token_mean"]) < high
    data = json.loads((out / "leaderboard.json").read_text("utf-8"))
    assert [r["experiment_id"] for r in data] == [r["experiment_id"] for r in rows]
    assert (out / "runs.csv").read_text("utf-8").count("\n") == 1 + len(v1) + 9
    index = (out / "index.html").read_text("utf-8")
    assert 'href="leaderboard.csv"' in index and 'href="leaderboard.json"' in index


def test_every_experiment_has_a_page_with_config_runs_and_reproduction(site) -> None:
    out, ids, v1 = site
    assert len(list((out / "experiments").glob("*.html"))) == len(v1) + 3
    for doc in v1:
        page = page_of(out, doc["experiment_id"])
        assert doc["run_id"] in page
        if doc["suite"] == "quickstart":
            # The suite path recorded as /work/main/suites/quickstart.yaml is published relative
            # to its repository (or as its file name where that is not on this machine).
            assert re.search(r"lembench run (suites/)?quickstart\.yaml", page)
            assert "/work/main" not in page
        assert "Environment snapshot" in page
    failed = next(d for d in v1 if d["status"] == "failed")
    assert "model_load_error" in page_of(out, failed["experiment_id"])
    xss = page_of(out, ids["xss"])
    assert "Power over the measured window" in xss and 'class="prefill"' in xss
    assert 'class="mark line"' in xss  # the power line from timeline.jsonl
    assert xss.count("20261121T120000Z-") >= 3  # per-cycle rows


def test_reproduction_snippet_is_a_suite_for_the_same_experiment(site, tmp_path: Path) -> None:
    out, _, v1 = site
    doc = next(d for d in v1 if d["suite"] == "quickstart")
    page = page_of(out, doc["experiment_id"])
    snippet = re.search(r'<pre class="yaml"><code>(.*?)</code></pre>', page, re.S).group(1)
    suite_file = tmp_path / "reproduce.yaml"
    suite_file.write_text(html.unescape(snippet), "utf-8")
    suite = load_suite(suite_file)
    assert suite.name == "quickstart"
    assert [e.experiment_id for e in suite.experiments] == [doc["experiment_id"]]


def test_methodology_lists_every_metric_and_method(site) -> None:
    out, _, _ = site
    text = (out / "methodology.html").read_text("utf-8")
    for name, (unit, definition) in METRIC_DEFINITIONS.items():
        assert f'id="metric-{name}"' in text
        assert str(escape(definition)) in text  # as jinja2 escapes it
        assert str(escape(unit)) in text
    for method in METHODS:
        assert f'id="method-{method}"' in text


def test_charts_page_draws_pareto_and_batch_charts(site) -> None:
    out, _, _ = site
    text = (out / "charts.html").read_text("utf-8")
    assert text.count('<svg class="chart"') >= 1
    assert 'class="front"' in text or text.count('class="mark"') >= 1
    assert 'class="mark estimate"' in text
    # Every model/hardware/task here was measured at one batch size: table rows, not charts.
    singles = text.split('<table class="singles">')[1].split("</table>")[0]
    assert singles.count("<tr>") == 1 + 5  # header + one per experiment with energy
    assert not re.search(r'id="batch-\d', text)


def test_missing_or_empty_results_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        build_site(tmp_path / "nope", tmp_path / "site")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no stored runs"):
        build_site(tmp_path / "empty", tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_a_suite_folder_given_as_results_root_gets_a_hint(tmp_path: Path) -> None:
    copy_v1(tmp_path / "results")
    with pytest.raises(UserError, match="--suite quickstart"):
        build_site(tmp_path / "results" / "quickstart", tmp_path / "site")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    copy_v1(root)
    return root


def test_refuses_a_non_empty_folder_that_is_not_a_site(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="--force"):
        build_site(results, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    summary = build_site(results, out, force=True)  # written beside the user's file
    assert (out / "notes.txt").read_text() == "keep me" and (out / "index.html").is_file()
    assert summary.experiments == 3 and is_site(out)


def test_force_never_replaces_a_file_it_did_not_write(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my page")
    with pytest.raises(UserError, match=r"index\.html"):
        build_site(results, out, force=True)
    assert (out / "index.html").read_text() == "my page"
    assert [p.name for p in out.iterdir()] == ["index.html"]


def test_rebuild_replaces_the_previous_site_and_keeps_added_files(
    results: Path, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    build_site(results, out)
    (out / "CNAME").write_text("example.org")
    (out / "experiments" / "stale.html").write_text("old")
    build_site(results, out)
    assert (out / "CNAME").read_text() == "example.org"
    assert not (out / "experiments" / "stale.html").exists()
    assert json.loads((out / MANIFEST).read_text())["generator"] == "lembench report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "site"]


def test_a_failed_build_leaves_no_half_site(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lembench.report.build as build

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    out = tmp_path / "site"
    build_site(results, out)
    before = (out / "index.html").read_text("utf-8")
    monkeypatch.setattr(build, "experiment_context", broken)
    with pytest.raises(RuntimeError):
        build_site(results, out)
    with pytest.raises(RuntimeError):
        build_site(results, tmp_path / "new")
    assert (out / "index.html").read_text("utf-8") == before  # the old site is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "site"]


def test_mixed_environments_are_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "results"
    cfg = config("synthetic/mixed", "vllm", "bf16", 4)
    for cycle, gpu in ((1, "NVIDIA H100 80GB HBM3"), (2, "NVIDIA L4")):
        write_run(root, result(cfg, cycle=cycle, hardware=gpu, timeline=False)[0])
    with pytest.raises(UserError, match="--allow-mixed"):
        build_site(root, tmp_path / "site")
    assert not (tmp_path / "site").exists()
    build_site(root, tmp_path / "site", allow_mixed=True)
    assert "mixed_environment" in (tmp_path / "site" / "index.html").read_text("utf-8")


def test_measured_and_estimated_runs_of_one_experiment_are_not_averaged(tmp_path: Path) -> None:
    root = tmp_path / "results"
    cfg = config("synthetic/meters", "pytorch", "fp32", 1)
    write_run(root, result(cfg, cycle=1, hardware=None, estimate=False, timeline=False)[0])
    write_run(root, result(cfg, cycle=2, hardware=None, estimate=True)[0])
    with pytest.raises(UserError, match="measured and estimated"):
        build_site(root, tmp_path / "site")
    summary = build_site(root, tmp_path / "site", allow_mixed=True)
    assert (summary.measured, summary.estimated) == (0, 1)


def test_pagination_splits_rows_and_keeps_every_experiment(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for b in range(1, 26):
        write_run(root, result(config("synthetic/p", "vllm", "bf16", b), timeline=False)[0])
    summary = build_site(root, tmp_path / "site", page_size=10)
    assert summary.index_pages == 3
    pages = ["index.html", "index-2.html", "index-3.html"]
    counts = [(tmp_path / "site" / p).read_text("utf-8").count("<tr data-model=") for p in pages]
    assert counts == [10, 10, 5]
    assert 'aria-current="page"' in (tmp_path / "site" / "index-2.html").read_text("utf-8")


def test_parallel_page_workers_write_the_same_pages(tmp_path: Path) -> None:
    from lembench.report.data import collect

    root = tmp_path / "results"
    for b in range(1, 7):
        doc, samples = result(config("synthetic/par", "vllm", "bf16", b))
        write_run(root, doc, samples)
    collected = collect(root)
    one = build_site(root, tmp_path / "one", collected=collected, workers=1)
    two = build_site(root, tmp_path / "two", collected=collected, workers=2)
    assert one.files == two.files
    pages = sorted(p.name for p in (tmp_path / "one" / "experiments").iterdir())
    assert pages == sorted(p.name for p in (tmp_path / "two" / "experiments").iterdir())
    for name in pages:
        a = (tmp_path / "one" / "experiments" / name).read_text("utf-8")
        b = (tmp_path / "two" / "experiments" / name).read_text("utf-8")
        assert re.sub(r"on \d{4}-.*? UTC", "", a) == re.sub(r"on \d{4}-.*? UTC", "", b)
