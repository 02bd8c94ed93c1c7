"""What each lever changed: pairs that differ only in it, numbers, noise, and the experiment to
run when no pair exists (a suite snippet that loads as a valid suite)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from lembench.advice.data import Experiment, load
from lembench.advice.levers import LeverReport, analyse
from lembench.advice.suggest import Suggestion, for_lever
from lembench.suite import load_suite
from lembench.suite.expand import deep_merge
from tests.helpers.advice_runs import add, config


def report(root: Path, lever: str) -> LeverReport:
    return next(r for r in analyse(load(root).experiments) if r.lever == lever)


def test_batch_size_pair(tmp_path: Path) -> None:
    a = add(tmp_path, config(batch_size=1), j=0.31, tput=100.0, ttft=0.2)
    b = add(tmp_path, config(batch_size=8), j=0.081, tput=490.0, ttft=0.6)
    r = report(tmp_path, "batch_size")
    (step,) = r.steps
    assert (step.before.experiment_id, step.after.experiment_id) == (a, b)
    j = step.changes["j_per_output_token"]
    assert j.before == pytest.approx(0.31) and j.after == pytest.approx(0.081)
    assert j.pct == pytest.approx((0.081 / 0.31 - 1) * 100)  # -74%
    assert j.noise == "outside"  # tight intervals, far apart
    text = step.text(load(tmp_path).short)
    assert text.startswith("batch 1 -> 8: J/token -74% (0.31 J -> 0.081 J)")
    assert "throughput x4.9" in text and "TTFT p99 x3" in text
    assert f"[ids {a[:8]}, {b[:8]}]" in text
    assert (
        r.suggestion is None
        and r.summary() == "J/token fell in 1 of 1 comparison (1 outside noise)"
    )


def test_precision_quantisation_and_backend_pairs(tmp_path: Path) -> None:
    fp32 = add(tmp_path, config(precision="fp32"), j=2.0)
    fp16 = add(tmp_path, config(precision="fp16"), j=1.0)
    nf4 = add(tmp_path, config(precision="fp16", quantization="bnb_nf4"), j=1.3)
    vllm = add(tmp_path, config(precision="fp16", backend="vllm"), j=0.4)
    (p,) = report(tmp_path, "precision").steps
    assert (p.before.experiment_id, p.after.experiment_id) == (fp32, fp16)
    assert p.changes["j_per_output_token"].ratio == pytest.approx(0.5)
    (q,) = report(tmp_path, "quantization").steps
    assert (q.before.experiment_id, q.after.experiment_id) == (fp16, nf4)
    assert q.changes["j_per_output_token"].pct == pytest.approx(30.0)
    assert "quantisation none -> bnb_nf4" in q.describe()
    (b,) = report(tmp_path, "backend").steps
    assert (b.before.experiment_id, b.after.experiment_id) == (fp16, vllm)
    assert b.describe().startswith("backend pytorch -> vllm: J/token -60%")


def test_pairs_need_everything_else_equal(tmp_path: Path) -> None:
    # differ in batch size AND precision: no pair for either lever
    add(tmp_path, config(batch_size=1, precision="fp32"), j=1.0)
    add(tmp_path, config(batch_size=8, precision="fp16"), j=0.2)
    # other workload shape: not comparable either
    add(tmp_path, config(batch_size=4, precision="fp32", output_tokens=512), j=0.5)
    for lever in ("batch_size", "precision"):
        r = report(tmp_path, lever)
        assert r.steps == () and isinstance(r.suggestion, Suggestion)


def test_prompt_count_is_not_a_different_job(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1, num_prompts=8), j=1.0)
    add(tmp_path, config(batch_size=16, num_prompts=32), j=0.2)
    assert len(report(tmp_path, "batch_size").steps) == 1


def test_estimates_never_paired_with_measurements(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0, estimate=True)
    add(tmp_path, config(batch_size=8), j=0.2)
    assert report(tmp_path, "batch_size").steps == ()


def test_estimated_pair_is_labelled(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0, estimate=True)
    add(tmp_path, config(batch_size=8), j=0.2, estimate=True)
    (step,) = report(tmp_path, "batch_size").steps
    assert "estimated J/token -80%" in step.describe()


def test_noise_within_and_unknown(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0, spread=(0.8, 1.0, 1.2))
    add(tmp_path, config(batch_size=2), j=0.95, spread=(0.8, 1.0, 1.2))
    (step,) = report(tmp_path, "batch_size").steps
    assert step.changes["j_per_output_token"].noise == "within"
    assert "within noise" in step.describe()
    other = tmp_path / "single"
    add(other, config(batch_size=1), j=1.0, spread=(1.0,))
    add(other, config(batch_size=2), j=0.5, spread=(1.0,))
    (step,) = report(other, "batch_size").steps
    assert step.changes["j_per_output_token"].noise == "unknown"
    assert "noise unknown" in step.describe()


def test_three_batch_sizes_compare_with_the_smallest(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=4), j=0.5)
    add(tmp_path, config(batch_size=1), j=1.0)
    add(tmp_path, config(batch_size=16), j=0.2)
    steps = report(tmp_path, "batch_size").steps
    assert [(s.before.batch_size, s.after.batch_size) for s in steps] == [(1, 4), (1, 16)]


def _suite_with(base: Experiment, s: Suggestion, folder: Path) -> Path:
    """A suite file: the base experiment's config plus the suggestion's snippet."""
    experiment = copy.deepcopy(base.config)
    snippet = copy.deepcopy(s.snippet)
    doc: dict[str, Any] = {
        "schema_version": 3,
        "name": "suggested",
        "experiment": deep_merge(experiment, snippet.pop("experiment", {})),
    }
    doc.update(snippet)
    # a sweep over backends needs each engine's block only where that engine runs
    path = folder / "suggested.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("lever", ["batch_size", "precision", "quantization", "backend"])
@pytest.mark.parametrize("backend", ["pytorch", "vllm", "tensorrt-llm"])
def test_suggestions_are_valid_suites(tmp_path: Path, lever: str, backend: str) -> None:
    add(tmp_path, config(backend=backend), j=1.0)
    (e,) = load(tmp_path).experiments
    s = for_lever(lever, e)
    assert s.text and s.snippet and s.base is e
    lines = s.yaml_lines()
    assert all(": " in line for line in lines)
    suite = load_suite(_suite_with(e, s, tmp_path))
    assert len(suite.experiments) >= 2  # the snippet adds at least one experiment


def test_suggestion_snippet_lines(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=8, precision="fp32"), j=1.0)
    (e,) = load(tmp_path).experiments
    assert for_lever("batch_size", e).yaml_lines() == ["sweep: {batch_size: [1, 8, 32]}"]
    assert for_lever("precision", e).yaml_lines() == ["sweep: {precision: [fp32, fp16, bf16]}"]
    q = for_lever("quantization", e).yaml_lines()
    assert q == [
        "experiment: {device: cuda, precision: fp16}",
        "sweep: {pytorch.quantization: [null, bnb_int8, bnb_nf4]}",
    ]
