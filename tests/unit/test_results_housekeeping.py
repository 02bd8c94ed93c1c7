"""Results housekeeping: one JSON document from `results show --json`, `results rm` and
`results prune --failed` move runs to the store's trash (never delete), and a results folder is
ignored by git so provenance does not call every later run dirty."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner

from lembench.cli import cli
from lembench.report.synthetic import config, result, write_run
from lembench.store import ResultStore


def _runs(root: Path) -> tuple[str, list[str]]:
    ids = []
    for cycle in (1, 2):
        doc, _ = result(config("synthetic/m", "vllm", "bf16", 1), cycle=cycle, timeline=False)
        write_run(root, doc)
        ids.append(doc["run_id"])
    failed, _ = result(config("synthetic/m", "vllm", "bf16", 2), status="failed", timeline=False)
    write_run(root, failed)
    return doc["experiment_id"], ids


def test_show_json_is_one_document(tmp_path: Path) -> None:
    eid, run_ids = _runs(tmp_path)
    res = CliRunner().invoke(
        cli, ["results", "show", eid[:6], "--results-dir", str(tmp_path), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)  # several runs: one array, not documents back to back
    assert [d["run_id"] for d in doc] == run_ids
    res = CliRunner().invoke(
        cli, ["results", "show", run_ids[0], "--results-dir", str(tmp_path), "--json"]
    )
    assert json.loads(res.output)["run_id"] == run_ids[0]


def test_rm_and_prune_move_runs_to_the_trash(tmp_path: Path) -> None:
    _, run_ids = _runs(tmp_path)
    store = ResultStore(tmp_path)
    res = CliRunner().invoke(cli, ["results", "prune", "--failed", "--results-dir", str(tmp_path)])
    assert res.exit_code == 0 and "1 failed run moved" in res.output
    assert all(r.result["status"] == "ok" for r in store.iter_runs())
    res = CliRunner().invoke(cli, ["results", "rm", run_ids[0], "--results-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert [r.run_id for r in store.iter_runs()] == run_ids[1:]
    trashed = sorted(p.parent.name for p in (tmp_path / ".trash").rglob("result.json"))
    assert len(trashed) == 2 and run_ids[0] in trashed  # moved, not deleted


def test_results_folder_is_ignored_by_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    store = ResultStore(tmp_path / "results")
    store.ensure_gitignore()
    _runs(tmp_path / "results")
    status = subprocess.run(
        ["git", "-C", str(tmp_path), "status", "--porcelain"], capture_output=True, text=True
    )
    assert status.stdout == ""  # nothing untracked: a later run is not "uncommitted changes"
    (tmp_path / "results" / ".gitignore").write_text("mine\n")
    store.ensure_gitignore()
    assert (tmp_path / "results" / ".gitignore").read_text() == "mine\n"  # a user's own stays


def test_terminal_tables_fit_100_columns_sorted_by_swept_keys(tmp_path: Path) -> None:
    from rich.console import Console

    from lembench.display import summary_table
    from lembench.report.synthetic import demo
    from lembench.results.aggregate import runs_frame, summarise

    demo(tmp_path)
    res = CliRunner().invoke(cli, ["results", "list", "--results-dir", str(tmp_path)])
    assert res.exit_code == 0 and max(len(line) for line in res.output.splitlines()) <= 100
    assert "20261121T120000Z-" in res.output  # run ids whole, never cut
    console = Console(width=200, record=True)
    store = ResultStore(tmp_path)
    summary = summarise(runs_frame(store.iter_runs()))
    assert store.skipped == {}  # the demo writes only valid results (none skipped)
    console.print(summary_table(summary, "t"), width=100)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "95% confidence interval" in text
    # llamacpp runs only the demo-8b model: its rows in batch order, not by experiment hash.
    batches = [int(line.split("│")[4]) for line in text.splitlines() if "llamacpp" in line]
    assert batches == sorted(batches) and len(batches) == 4


def test_dummy_weights_are_said_in_results_list(tmp_path: Path) -> None:
    cfg = {**config("synthetic/m", "pytorch", "fp32", 1), "weights": "dummy"}
    doc, _ = result(cfg, timeline=False)
    write_run(tmp_path, doc)
    res = CliRunner().invoke(cli, ["results", "list", "--results-dir", str(tmp_path)])
    assert "(dummy" in res.output and "weights)" in res.output  # folded in a narrow cell
