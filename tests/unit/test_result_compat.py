"""Result files written by earlier versions keep loading: real v1 files (from a quickstart run and a
mixed run with a failed load group) are frozen under tests/data/; they are upgraded on read and then
validate against the current schema."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from rich.console import Console

from harness.contract.io import write_json_atomic
from harness.contract.results import validation_problem
from lembench.display import runs_table, show_run, summary_table
from lembench.results.aggregate import runs_frame, summarise
from lembench.results.migrate import CURRENT_VERSION, V4_METRICS, upgrade
from lembench.store import StoredRun

DATA = Path(__file__).resolve().parents[1] / "data"
FILES = sorted(DATA.glob("result-v*.json"))


def test_frozen_files_exist() -> None:
    assert {f.name for f in FILES} >= {
        "result-v1-ok-synthetic.json",
        "result-v1-ok-humaneval.json",
        "result-v1-failed-humaneval.json",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_frozen_result_validates(path: Path) -> None:
    raw = json.loads(path.read_text())
    upgraded = upgrade(raw)
    assert upgraded["schema_version"] == CURRENT_VERSION == 5
    assert validation_problem(upgraded) is None
    assert validation_problem(raw) is not None  # proves the upgrade is what makes it load
    # Nothing was scored before v4: quality and the metrics derived from it are null.
    assert upgraded["quality"] is None
    if "metrics" in upgraded:
        assert {k: upgraded["metrics"][k] for k in V4_METRICS} == dict.fromkeys(V4_METRICS)


V2_FILES = sorted((DATA / "runs").glob("*/*/*/result.json"))


@pytest.mark.parametrize("path", V2_FILES, ids=lambda p: "/".join(p.parts[-4:-1]))
def test_frozen_v2_result_upgrades_to_current(path: Path) -> None:
    """Real v2 runs (quickstart and a mixed suite) load as the current version: decoding,
    traffic (v3) and quality (v4), which v2 did not record, are present and null rather than
    invented."""
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 2
    upgraded = upgrade(raw)
    assert upgraded["schema_version"] == CURRENT_VERSION
    assert upgraded["decoding"] is None and upgraded["traffic"] is None
    assert upgraded["quality"] is None
    assert validation_problem(upgraded) is None
    assert validation_problem(raw) is not None


def test_frozen_results_aggregate_and_display() -> None:
    runs = [StoredRun(p.parent, upgrade(json.loads(p.read_text()))) for p in FILES]
    frame = runs_frame(runs)
    assert frame.height == len(FILES)
    summary = summarise(frame)
    assert summary["n_failed"].sum() == 1
    console = Console(record=True, width=250)
    console.print(summary_table(summary, "compat"))
    console.print(runs_table(frame))
    for run in runs:
        show_run(console, run)
    text = console.export_text()
    assert "estimate" in text and "model_load_error" in text


def test_written_json_is_readable_by_others(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644
