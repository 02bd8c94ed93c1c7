"""Exports (CSV, Parquet, JSON) and the click commands ``report_command``/``export_command``."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from lembench.errors import UserError
from lembench.report.commands import export_command, report_command
from lembench.report.export import export, flat
from lembench.report.synthetic import config, result, write_run


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for b in (1, 4):
        cfg = config("synthetic/export", "vllm", "bf16", b)
        for cycle in (1, 2, 3):
            write_run(root, result(cfg, cycle=cycle, timeline=False)[0])
    write_run(root, result(config("synthetic/export", "vllm", "bf16", 99), status="failed")[0])
    return root


def test_nested_columns_become_json_text_in_csv(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"a": [1.0, math.nan], "codes": [["x", "y"], []], "s": [{"k": 1}, {"k": None}]}
    )
    flat_frame = flat(frame)
    assert [json.loads(v) for v in flat_frame["codes"]] == [["x", "y"], []]
    assert [json.loads(v) for v in flat_frame["s"]] == [{"k": 1}, {"k": None}]
    export(frame, "csv", tmp_path / "t.csv")
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert json.loads(rows[0]["codes"]) == ["x", "y"]
    buf = io.StringIO()
    export(frame, "json", buf)
    assert json.loads(buf.getvalue())[1] == {"a": None, "codes": [], "s": {"k": None}}  # no NaN
    export(frame, "parquet", tmp_path / "t.parquet")
    assert pl.read_parquet(tmp_path / "t.parquet")["codes"].to_list() == [["x", "y"], []]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]  # no temp files
    with pytest.raises(UserError, match="unknown export format"):
        export(frame, "xlsx", tmp_path / "t.xlsx")


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_command_writes_the_aggregated_table(
    results: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"table.{fmt}"
    res = CliRunner().invoke(
        export_command, ["--results-dir", str(results), "--format", fmt, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    frame = {
        "csv": pl.read_csv,
        "json": lambda p: pl.DataFrame(json.loads(Path(p).read_text())),
        "parquet": pl.read_parquet,
    }[fmt](out)
    assert frame.height == 3  # two measured experiments and the failed one
    assert frame["j_per_output_token_n"].to_list()[:2] == [3, 3]
    assert frame["rank"].to_list()[:2] == [1, 2]
    assert {"j_per_output_token_ci95_low", "hardware", "stability"} <= set(frame.columns)


def test_export_command_per_run_to_stdout(results: Path) -> None:
    res = CliRunner().invoke(export_command, ["--results-dir", str(results), "--runs"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert len(rows) == 7 and {r["status"] for r in rows} == {"ok", "failed"}


def test_report_command_builds_and_reports_bad_input(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    res = CliRunner().invoke(report_command, [str(results), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 experiments from 7 runs" in res.output and (out / "index.html").is_file()
    # Bad input reaches lembench.cli.main as UserError (one line, exit 2 there).
    res = CliRunner().invoke(report_command, [str(tmp_path / "none"), "--out", str(out)])
    assert isinstance(res.exception, UserError) and "does not exist" in str(res.exception)
    res = CliRunner().invoke(report_command, [str(results), "--out", str(tmp_path)])
    assert isinstance(res.exception, UserError) and "--force" in str(res.exception)
    res = CliRunner().invoke(
        report_command, [str(results), "--out", str(out), "--suite", "no-such-suite"]
    )
    assert isinstance(res.exception, UserError) and "no-such-suite" in str(res.exception)
