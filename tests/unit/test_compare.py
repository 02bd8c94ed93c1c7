"""``lembench compare``: Welch's test and the ratio's interval from scipy, experiments and suites,
one JSON document, one-line errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from lembench.report.synthetic import config, result, write_run
from lembench.results.compare import compare, compare_values
from lembench.suite.expand import experiment_id


def lembench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run(
        [sys.executable, "-c", "from lembench.cli import main; main()", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_welch_test_and_ratio_interval() -> None:
    a, b = [10.0, 10.5, 9.8, 10.2], [8.0, 8.4, 7.9, 8.1]
    m = compare_values("j_per_output_token", a, b)
    assert m.p_value == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert m.significant and m.verdict == "B lower (better)"
    assert m.ratio == pytest.approx((sum(b) / 4) / (sum(a) / 4))
    assert m.ratio_low < m.ratio < m.ratio_high < 1.0
    # A throughput increase is better; overlapping samples are not significant.
    assert compare_values("throughput_out_tok_s", a, b).verdict == "B lower (worse)"
    same = compare_values("j_per_output_token", a, [10.1, 9.9, 10.3, 10.0])
    assert same.significant is False and same.verdict == "no significant difference"
    assert same.ratio_low < 1.0 < same.ratio_high


def test_too_few_cycles_are_said_not_tested() -> None:
    m = compare_values("j_per_output_token", [1.0], [2.0, 2.1])
    assert m.p_value is None and m.significant is None and "too few cycles" in m.verdict
    assert m.ratio == pytest.approx(2.05)
    assert m.a.half_width is None and m.b.half_width is not None


def _experiment(root: Path, suite: str, backend: str, batch: int, cycles: int = 3) -> str:
    cfg = config("synthetic/m", backend, "bf16", batch)
    for c in range(1, cycles + 1):
        doc, _ = result(cfg, suite=suite, cycle=c, cycles=cycles, timeline=False)
        write_run(root, doc)
    return experiment_id(cfg)


def test_two_experiments_and_two_suites(tmp_path: Path) -> None:
    a = _experiment(tmp_path, "synthetic-a", "vllm", 1)
    b = _experiment(tmp_path, "synthetic-a", "vllm", 8)
    res = compare(tmp_path, a[:6], b)
    (pair,) = res.pairs
    j = next(m for m in pair.metrics if m.metric == "j_per_output_token")
    assert j.a.n == j.b.n == 3 and j.ratio is not None and j.ratio < 1 and j.significant
    # Two suites: experiments paired by id (the same config), the rest listed as unpaired.
    _experiment(tmp_path, "synthetic-b", "vllm", 1)
    only_b = _experiment(tmp_path, "synthetic-b", "pytorch", 1)
    res = compare(tmp_path, "synthetic-a", "synthetic-b")
    assert [p.a.experiment_id for p in res.pairs] == [a]
    assert res.only_a == [b] and res.only_b == [only_b]


def test_cli_terminal_json_and_errors(tmp_path: Path) -> None:
    a = _experiment(tmp_path, "synthetic-a", "vllm", 1)
    b = _experiment(tmp_path, "synthetic-a", "vllm", 8, cycles=1)
    out = lembench("compare", a, b, "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "95% confidence interval" in out.stdout and "too few cycles" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 100
    js = lembench("compare", a, b, "--results-dir", str(tmp_path), "--json")
    doc = json.loads(js.stdout)  # one document
    j = next(m for m in doc["pairs"][0]["metrics"] if m["metric"] == "j_per_output_token")
    assert j["p_value"] is None and math.isfinite(j["ratio"])
    bad = lembench("compare", a, "synthetic-a", "--results-dir", str(tmp_path))
    assert bad.returncode == 2 and "two experiments or two suites" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    none = lembench("compare", a, "zzzz", "--results-dir", str(tmp_path))
    assert none.returncode == 2 and "'zzzz'" in none.stderr


def test_report_writes_a_compare_page_linked_from_every_page(tmp_path: Path) -> None:
    from lembench.report.build import build_site

    root = tmp_path / "r"
    a = _experiment(root, "synthetic-a", "vllm", 1)
    b = _experiment(root, "synthetic-a", "vllm", 8)
    build_site(root, tmp_path / "site", comparisons=[(a[:8], b[:8])])
    (page,) = (tmp_path / "site" / "compare").glob("*.html")
    html = page.read_text("utf-8")
    assert html.count('<tr class="significant">') >= 1 and "j_per_output_token" in html
    assert f'href="../experiments/synthetic-a--{a}.html"' in html
    index = (tmp_path / "site" / "index.html").read_text("utf-8")
    assert f'href="compare/{page.name}">Compare</a>' in index
