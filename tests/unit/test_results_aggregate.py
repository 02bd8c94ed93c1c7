"""Per-experiment summaries: means with 95% t-intervals over runs, stability warnings, and the
refusal to merge runs from different environments. Runs are built from a frozen real v1 file."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from rich.console import Console

from lembench.display import experiment_summary_view, summary_table
from lembench.errors import UserError
from lembench.results.aggregate import (
    IDENTITY,
    METRICS,
    MixedEnvironmentError,
    runs_frame,
    summarise,
)
from lembench.results.environment import environment_key, hardware_label
from lembench.results.migrate import upgrade
from lembench.results.stats import mean_ci
from lembench.store import StoredRun

DATA = Path(__file__).resolve().parents[1] / "data"
BASE = upgrade(json.loads((DATA / "result-v1-ok-synthetic.json").read_text()))
EXP = "aaaaaaaaaaaa"


def gpu(i: int, uuid: str | None = None, driver: str = "550.54.15") -> dict[str, Any]:
    return {
        "index": i,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": uuid or f"GPU-{i:04d}",
        "memory_total_bytes": 85899345920,
        "driver": driver,
        "power_limit_w": 700.0,
    }


def ok(
    cycle: int,
    jpt: float = 1.0,
    tput: float = 100.0,
    exp: str = EXP,
    torch: str | None = None,
    env: dict[str, Any] | None = None,
    **metrics: Any,
) -> dict[str, Any]:
    """A successful run of ``exp`` with the given numbers (and environment changes)."""
    r = copy.deepcopy(BASE)
    r.update(experiment_id=exp, run_id=f"{exp}-c{cycle}", cycle=cycle)
    r["metrics"].update(j_per_output_token=jpt, throughput_out_tok_s=tput, **metrics)
    if torch:
        r["provenance"]["backend"]["versions"]["torch"] = torch
    if env:
        r["environment"].update(env)
    return r


def failed(cycle: int, exp: str = EXP) -> dict[str, Any]:
    """A run of ``exp`` that failed before the harness recorded metrics or an environment."""
    r = copy.deepcopy(BASE)
    for key in ("metrics", "energy", "flops", "requests", "environment"):
        del r[key]
    del r["provenance"]["backend"]
    r.update(
        experiment_id=exp,
        run_id=f"{exp}-c{cycle}",
        cycle=cycle,
        status="failed",
        error={"reason": "oom", "message": "CUDA out of memory", "exit_code": 70},
    )
    return r


def frame(*results: dict[str, Any]) -> pl.DataFrame:
    return runs_frame(StoredRun(Path("/nowhere"), r) for r in results)


def one(summary: pl.DataFrame, exp: str = EXP) -> dict[str, Any]:
    rows = summary.filter(pl.col("experiment_id") == exp).to_dicts()
    assert len(rows) == 1
    return rows[0]


def test_ci_by_hand() -> None:
    row = one(summarise(frame(ok(1, jpt=10), ok(2, jpt=12), ok(3, jpt=14))))
    half = 4.302652729749464 * 2 / math.sqrt(3)
    assert row["j_per_output_token_mean"] == pytest.approx(12)
    assert row["j_per_output_token_std"] == pytest.approx(2)
    assert row["j_per_output_token_n"] == 3
    assert row["j_per_output_token_ci95_low"] == pytest.approx(12 - half, rel=1e-12)
    assert row["j_per_output_token_ci95_high"] == pytest.approx(12 + half, rel=1e-12)


def test_every_metric_has_mean_std_n_and_interval() -> None:
    summary = summarise(frame(ok(1), ok(2)))
    for m in METRICS:
        for suffix in ("mean", "std", "ci95_low", "ci95_high"):
            assert summary.schema[f"{m}_{suffix}"] == pl.Float64, (m, suffix)
        assert summary.schema[f"{m}_n"] == pl.Int64
    for key in IDENTITY:
        assert key in summary.columns


def test_intervals_agree_with_stats_for_many_run_counts() -> None:
    results = [ok(c, jpt=1 + 0.01 * c * c, exp=f"{n:012x}") for n in (2, 5, 40) for c in range(n)]
    summary = summarise(frame(*results), cv_threshold=0.99)
    for n in (2, 5, 40):
        row = one(summary, f"{n:012x}")
        mean, std, count, low, high = mean_ci([1 + 0.01 * c * c for c in range(n)])
        assert row["j_per_output_token_n"] == count == n
        assert row["j_per_output_token_mean"] == pytest.approx(mean)
        assert row["j_per_output_token_std"] == pytest.approx(std)
        assert row["j_per_output_token_ci95_low"] == pytest.approx(low)
        assert row["j_per_output_token_ci95_high"] == pytest.approx(high)


def test_null_metrics_are_not_counted() -> None:
    # Two upgraded v1 runs (no net energy) and two v2 runs that have it.
    runs = [ok(1), ok(2), ok(3, j_per_output_token_net=0.5), ok(4, j_per_output_token_net=0.7)]
    row = one(summarise(frame(*runs)))
    assert row["j_per_output_token_n"] == 4
    assert row["j_per_output_token_net_n"] == 2
    assert row["j_per_output_token_net_mean"] == pytest.approx(0.6)
    # Never recorded at all: n 0, everything else null.
    assert row["mfu_n"] == 0
    assert row["mfu_mean"] is None and row["mfu_std"] is None and row["mfu_ci95_low"] is None


def test_one_run_has_a_mean_but_no_spread() -> None:
    row = one(summarise(frame(ok(1, jpt=2.5))))
    assert row["j_per_output_token_mean"] == 2.5
    assert row["j_per_output_token_n"] == 1
    assert row["j_per_output_token_std"] is None
    assert (
        row["j_per_output_token_ci95_low"] is None and row["j_per_output_token_ci95_high"] is None
    )


def test_failed_runs_are_counted_not_averaged() -> None:
    runs = [ok(1, jpt=1), ok(2, jpt=2), ok(3, jpt=3), failed(4), failed(1, exp="bbbbbbbbbbbb")]
    summary = summarise(frame(*runs))
    row = one(summary)
    assert (row["n_ok"], row["n_failed"], row["errors"]) == (3, 1, "oom")
    assert row["j_per_output_token_mean"] == pytest.approx(2)
    assert row["energy_method"] == "estimate_codecarbon" and row["energy_is_estimate"] is True
    assert row["hardware"] == "AMD EPYC"
    assert row["flops_per_output_token"] == pytest.approx(BASE["flops"]["per_output_token"])
    only_failed = one(summary, "bbbbbbbbbbbb")
    assert (only_failed["n_ok"], only_failed["n_failed"]) == (0, 1)
    assert only_failed["energy_method"] is None and only_failed["energy_is_estimate"] is None
    assert only_failed["j_per_output_token_n"] == 0
    assert only_failed["stability"] == ["too_few_cycles"]


def test_stability_warnings() -> None:
    stable = [ok(c, jpt=1 + 0.01 * c, exp="000000000001") for c in range(1, 4)]
    noisy_energy = [ok(c, jpt=c, exp="000000000002") for c in range(1, 4)]
    noisy_speed = [ok(c, tput=50 * c, exp="000000000003") for c in range(1, 4)]
    short = [ok(c, exp="000000000004") for c in range(1, 3)]
    summary = summarise(frame(*stable, *noisy_energy, *noisy_speed, *short))
    assert one(summary, "000000000001")["stability"] == []
    assert one(summary, "000000000002")["stability"] == ["high_variance"]
    assert one(summary, "000000000003")["stability"] == ["high_variance"]
    assert one(summary, "000000000004")["stability"] == ["too_few_cycles"]
    # The threshold: an argument, else the suite's recorded measurement.cv_threshold.
    loose = summarise(frame(*noisy_energy), cv_threshold=0.9)
    assert one(loose, "000000000002")["stability"] == []
    for r in noisy_energy:
        r["provenance"]["measurement"]["requested"]["cv_threshold"] = 0.9
    assert one(summarise(frame(*noisy_energy)), "000000000002")["stability"] == []


def test_mixed_environments_are_refused_in_one_line() -> None:
    runs = [ok(1), ok(2), ok(3), ok(4, torch="2.14.0")]
    with pytest.raises(MixedEnvironmentError) as e:
        summarise(frame(*runs))
    message = str(e.value)
    assert isinstance(e.value, UserError) and e.value.exit_code == 2
    assert "\n" not in message
    assert EXP in message and "torch 2.13.0+cpu vs 2.14.0" in message
    assert message.endswith("pass --allow-mixed to merge anyway")
    assert e.value.fields == ["torch"]


def test_mixed_environments_merge_when_allowed() -> None:
    runs = [ok(1), ok(2), ok(3), ok(4, torch="2.14.0")]
    row = one(summarise(frame(*runs), allow_mixed=True))
    assert row["n_ok"] == 4 and row["n_environments"] == 2
    assert "mixed_environment" in row["stability"]
    assert len(row["environment_key"].split("|")) == 2


def test_grouping_by_environment_keeps_them_apart() -> None:
    runs = [ok(1), ok(2), ok(3), ok(4, torch="2.14.0")]
    summary = summarise(frame(*runs), by_environment=True)
    assert sorted(summary["n_ok"].to_list()) == [1, 3]
    assert summary["environment_key"].n_unique() == 2
    assert all("mixed_environment" not in s for s in summary["stability"].to_list())
    # A failed run recorded no environment: it joins its experiment's only environment.
    single = summarise(frame(ok(1), ok(2), ok(3), failed(4)), by_environment=True)
    assert single.height == 1 and (single["n_ok"][0], single["n_failed"][0]) == (3, 1)


def test_gpu_differences_are_environment_differences() -> None:
    h100s = {"gpus": [gpu(0), gpu(1)]}
    other_card = {"gpus": [gpu(0), gpu(1, uuid="GPU-ffff")]}
    with pytest.raises(MixedEnvironmentError) as e:
        summarise(frame(ok(1, env=h100s), ok(2, env=other_card)))
    assert e.value.fields == ["gpu_uuids"]
    new_driver = {"gpus": [gpu(0, driver="560.1"), gpu(1, driver="560.1")]}
    with pytest.raises(MixedEnvironmentError) as e:
        summarise(frame(ok(1, env=h100s), ok(2, env=new_driver)))
    assert e.value.fields == ["gpu_driver"]
    # The hostname is not part of the environment (containers get random ones).
    row = one(summarise(frame(ok(1, env=h100s), ok(2, env={**h100s, "hostname": "x"}))))
    assert row["n_environments"] == 1


def test_environment_key_and_hardware_label() -> None:
    a, b = ok(1), ok(2)
    assert environment_key(a) == environment_key(b)
    assert len(environment_key(a) or "") == 12
    assert environment_key(failed(3)) is None and hardware_label(failed(3)) is None
    assert hardware_label(a) == "AMD EPYC"
    on_gpus = ok(1, env={"gpus": [gpu(0), gpu(1)]})
    on_gpus["provenance"]["model"]["device"] = "cuda"
    assert hardware_label(on_gpus) == "2x NVIDIA H100 80GB HBM3"
    on_gpus["provenance"]["model"]["device"] = "cpu"  # a CPU run on a GPU machine
    assert hardware_label(on_gpus) == "AMD EPYC"


def test_empty_store_summarises_to_an_empty_frame() -> None:
    summary = summarise(runs_frame([]))
    assert summary.height == 0
    assert "j_per_output_token_ci95_low" in summary.columns


def test_raw_v1_results_aggregate_too() -> None:
    raw = json.loads((DATA / "result-v1-ok-synthetic.json").read_text())
    row = one(summarise(frame(raw)), raw["experiment_id"])
    assert row["j_per_output_token_n"] == 1 and row["idle_power_w_n"] == 0


def test_summary_views_render() -> None:
    summary = summarise(frame(ok(1, jpt=10), ok(2, jpt=12), ok(3, jpt=14), failed(4)))
    console = Console(record=True, width=200)
    console.print(summary_table(summary, "unit"))
    console.print(experiment_summary_view(summary.row(0, named=True)))
    text = console.export_text()
    assert "12 ± 5" in text  # half-width 4.97 at 2 significant digits
    assert "[7.032, 16.97]" in text
    assert "estimate" in text and "high_variance" in text and "1 failed (oom)" in text
    assert "MFU" not in text  # not recorded by these runs


def _store(root: Path, results: list[dict[str, Any]]) -> None:
    for r in results:
        folder = root / r["suite"] / r["experiment_id"] / r["run_id"]
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(r))


def _lembench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args], capture_output=True, text=True, timeout=120
    )


def test_results_show_summarises_an_experiment(tmp_path: Path) -> None:
    _store(tmp_path, [ok(1), ok(2), ok(3, jpt=1.2), ok(4, torch="2.14.0")])
    refused = _lembench("results", "show", EXP[:6], "--results-dir", str(tmp_path))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--allow-mixed" in refused.stderr
    assert "Traceback" not in refused.stderr
    merged = _lembench("results", "show", EXP[:6], "--results-dir", str(tmp_path), "--allow-mixed")
    assert merged.returncode == 0, merged.stderr
    assert "mixed_environment" in merged.stdout and "95% CI" in merged.stdout
    assert merged.stdout.count(f"run {EXP}-c") == 4  # then every run
    single = _lembench("results", "show", f"{EXP}-c1", "--results-dir", str(tmp_path))
    assert single.returncode == 0 and "95% CI" not in single.stdout
