"""Every reader of the store skips a truncated or malformed result.json with a warning that names
it and why, counts it in its summary line and goes on; ``lembench results check`` lists them and
exits 1. Before: some were dropped silently, others crashed every reader (KeyError, TypeError)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lembench.errors import UserError
from lembench.store import RESULT_FILE, ResultStore

DATA = Path(__file__).resolve().parents[1] / "data" / "runs" / "quickstart"
GOOD = DATA / "824987d94347" / "20261121T210215Z-0e6a63-c1" / RESULT_FILE


def _good() -> dict[str, Any]:
    return json.loads(GOOD.read_text())


def _variants() -> dict[str, str]:
    def changed(**fields: Any) -> str:
        return json.dumps({**_good(), **fields})

    return {
        "truncated": GOOD.read_text()[:300],
        "config_null": changed(config=None),
        "metrics_string": changed(metrics="x"),
        "energy_list": changed(energy=[]),
        "only_version": '{"schema_version": 4}',
        "a_list": "[1, 2]",
        "not_utf8": '{"schema_version": 4, "suite": "\xff"}',
        "deep": "[" * 3000 + "]" * 3000,
    }


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "r"
    shutil.copytree(DATA, root / "quickstart")
    for name, text in _variants().items():
        folder = root / "quickstart" / "824987d94347" / f"bad-{name}"
        folder.mkdir()
        data = text.encode("latin-1") if name == "not_utf8" else text.encode()
        (folder / RESULT_FILE).write_bytes(data)
    return root


def test_store_skips_each_malformed_file_with_its_reason(results: Path) -> None:
    store = ResultStore(results)
    runs = list(store.iter_runs())
    assert len(runs) == 4  # the frozen real runs
    reasons = {p.parent.name.removeprefix("bad-"): s.why for p, s in store.skipped.items()}
    assert set(reasons) == set(_variants())
    assert "config" in reasons["config_null"] and "metrics" in reasons["metrics_string"]
    assert "energy" in reasons["energy_list"]
    assert "nested too deeply" in reasons["deep"]
    assert store.skipped_note() == (
        "8 result files skipped as unusable (`lembench results check` lists them)"
    )


def _lembench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["results", "list", "--results-dir", "r"],
        ["results", "show", "824987d94347", "--results-dir", "r"],
        ["results", "export", "--results-dir", "r"],
        ["report", "r", "--out", "site"],
        ["advise", "r"],
        ["estimate", "r", "--requests-per-month", "1000"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_every_reader_goes_on_and_counts_them(results: Path, args: list[str]) -> None:
    proc = _lembench(*args, cwd=results.parent)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "8 result files skipped as unusable" in proc.stdout + proc.stderr


def test_results_check_lists_them_and_exits_1(results: Path) -> None:
    proc = _lembench("results", "check", "--results-dir", "r", cwd=results.parent)
    assert proc.returncode == 1
    listed = [line for line in proc.stdout.splitlines() if "bad-" in line]
    assert len(listed) == 8
    assert "4 usable runs, 8 unusable result files" in proc.stdout
    shutil.rmtree(results / "quickstart" / "824987d94347")
    for folder in (results / "quickstart").glob("*/bad-*"):
        shutil.rmtree(folder)
    proc = _lembench("results", "check", "--results-dir", "r", cwd=results.parent)
    assert proc.returncode == 0 and "0 unusable" in proc.stdout


# Any JSON document at all, as result.json: a run or a skipped file, never an exception.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_fields = st.sampled_from(list(_good()))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=_json | st.builds(lambda k, v: {**_good(), k: v}, _fields, _json))
def test_any_document_is_a_run_or_a_skipped_file(tmp_path: Path, doc: Any) -> None:
    folder = tmp_path / "r" / "s" / "e" / "run"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILE).write_text(json.dumps(doc))
    store = ResultStore(tmp_path / "r")
    try:
        runs = list(store.iter_runs())
    except UserError as e:  # a result newer than this lembench: one line, "upgrade lembench"
        assert "upgrade lembench" in str(e)
        return
    assert len(runs) + len(store.skipped) == 1
    from lembench.results.aggregate import runs_frame, summarise

    summarise(runs_frame(runs), allow_mixed=True)
