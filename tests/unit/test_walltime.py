"""The wall-time breakdown printed at the end of ``lembench run``, from harness timings events."""

from __future__ import annotations

import pytest

from lembench.walltime import WallTimes


def test_parts_add_up_over_launches_and_the_rest_is_overhead() -> None:
    w = WallTimes()
    w.on_event({"event": "loaded", "seconds": 3.0})  # progress events do not count twice
    for _ in range(2):
        w.on_event(
            {
                "event": "timings",
                "startup_s": 2.0,
                "load_s": 3.0,
                "baseline_s": 1.5,
                "warmup_s": 1.0,
                "windows_s": 10.0,
            }
        )
    w.on_event({"event": "timings", "startup_s": None, "load_s": -1})  # nonsense is ignored
    assert w.launches == 3
    rows = dict(w.breakdown(40.0))
    assert rows["process start + imports"] == 4.0 and rows["model load"] == 6.0
    assert rows["idle baseline"] == 3.0 and rows["warmup"] == 2.0
    assert rows["measured windows"] == 20.0
    assert rows["other overhead"] == pytest.approx(40.0 - 35.0)
    line = w.line(40.0)
    assert line.startswith("wall time 40.0 s: process start + imports 4.0 s (10%)")
    assert "measured windows 20.0 s (50%)" in line and line.endswith("wall/work 2.00")


def test_no_timings_leaves_everything_in_the_overhead() -> None:
    w = WallTimes()
    assert dict(w.breakdown(5.0))["other overhead"] == 5.0
    assert "wall/work" not in w.line(5.0)


def test_results_show_tells_threads_baseline_sizing_and_time_share_closure(tmp_path) -> None:
    from click.testing import CliRunner

    from harness.contract.results import validation_problem
    from lembench.cli import cli
    from lembench.report.synthetic import write_run
    from tests.unit.conftest import make_result

    doc = make_result()
    doc["provenance"].setdefault("measurement", {})["threads"] = {
        "count": 1,
        "source": "experiment",
        "allowed_cpus": 2,
    }
    doc["energy"]["baseline"].update(windows=3, power_rel_se=0.004, target_met=True)
    assert validation_problem(doc) is None
    write_run(tmp_path / "results", doc)
    res = CliRunner().invoke(
        cli, ["results", "show", doc["run_id"], "--results-dir", str(tmp_path / "results")]
    )
    assert res.exit_code == 0, res.output
    assert "CPU threads: 1 (from experiment; 2 CPUs allowed)" in res.output
    assert "3 windows, mean known to 0.4%" in res.output
    assert "closure n/a: time share, adds up by construction" in res.output
