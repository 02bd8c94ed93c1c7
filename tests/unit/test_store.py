"""The append-only results store: layout, validation, no overwrite, no half-written runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lembench.store import RESULT_FILE, ResultStore, StoreError
from tests.unit.conftest import make_result


def test_store_layout_and_stamp(tmp_path: Path) -> None:
    log = tmp_path / "harness.log"
    log.write_text("log line\n")
    store = ResultStore(tmp_path / "results")
    run_dir = store.store(make_result(), log=log)
    assert run_dir == tmp_path / "results/unit/0123456789ab/20261121T000000Z-abcdef-c1"
    stored = json.loads((run_dir / RESULT_FILE).read_text())
    assert stored["provenance"]["stored_by"]["validated"] is True
    assert (run_dir / "harness.log").read_text() == "log line\n"
    assert [p.name for p in run_dir.parent.iterdir()] == [run_dir.name]  # no temp leftovers


def test_never_overwrites(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    first = store.store(make_result())
    before = (first / RESULT_FILE).read_bytes()
    with pytest.raises(StoreError, match="never overwritten"):
        store.store(make_result("failed"))
    assert (first / RESULT_FILE).read_bytes() == before


def test_invalid_result_is_refused_and_nothing_written(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r")
    bad = make_result()
    bad["metrics"]["tokens_out"] = "six"
    with pytest.raises(ValueError, match=r"metrics\.tokens_out"):
        store.store(bad)
    assert not list((tmp_path / "r").rglob(RESULT_FILE))
    assert not [p for p in (tmp_path / "r").rglob("*") if p.name.startswith(".tmp")]


def test_failed_write_leaves_no_partial_run(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    missing_log = tmp_path / "no-such-dir"
    missing_log.mkdir()  # a directory where a log file is expected: copyfile fails mid-way
    with pytest.raises(OSError):
        store.store(make_result(), log=missing_log)
    assert not list(tmp_path.rglob(RESULT_FILE))
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp")]


def test_completed_find_and_iteration(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.store(make_result(cycle=1, run_id="inv-c1"))
    store.store(make_result("failed", cycle=2, run_id="inv-c2"))
    store.store(make_result(experiment_id="fedcba987654", run_id="inv-c1"))
    (tmp_path / ".work" / "x").mkdir(parents=True)  # scratch folders are not runs
    assert store.completed("unit") == {("0123456789ab", 1), ("fedcba987654", 1)}
    assert len(list(store.iter_runs())) == 3
    assert [r.run_id for r in store.find("inv-c2")] == ["inv-c2"]
    assert {r.experiment_id for r in store.find("0123")} == {"0123456789ab"}
    assert store.find("zzz") == []
