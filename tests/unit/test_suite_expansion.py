"""Grid expansion and experiment ids."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lembench.errors import UserError
from lembench.suite import canonical_json, experiment_id, load_suite

# The fully expanded default experiment for `model: smollm2-135m`, and its id. Both are pinned:
# ids name stored results, so any change to canonicalisation, hashing or the schema's defaults must
# be deliberate (and fail here first).
GOLDEN_CONFIG = {
    "backend": "pytorch",
    "batch_size": 1,
    "device": "auto",
    "model": "smollm2-135m",
    "precision": "fp32",
    "pytorch": {"attn_implementation": None, "threads": None},
    "warmup": {"runs": 1},
    "workload": {
        "exact_output": True,
        "input_tokens": 32,
        "kind": "synthetic",
        "num_prompts": 8,
        "output_tokens": 32,
        "seed": 0,
    },
}
GOLDEN_ID = "824987d94347"


def load(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_suite(path)


def suite_text(experiment: str = "{model: smollm2-135m}", extra: str = "") -> str:
    return f"schema_version: 1\nname: t\nexperiment: {experiment}\n{extra}"


def test_golden_id() -> None:
    assert experiment_id(GOLDEN_CONFIG) == GOLDEN_ID


def test_canonical_json_form() -> None:
    assert canonical_json({"b": 1, "a": [1.5, None, True], "é": "ü"}) == (
        '{"a":[1.5,null,true],"b":1,"é":"ü"}'
    )


def test_loaded_default_experiment_matches_golden(tmp_path: Path) -> None:
    (experiment,) = load(tmp_path, suite_text()).experiments
    assert experiment.config == GOLDEN_CONFIG
    assert experiment.experiment_id == GOLDEN_ID


def test_id_independent_of_key_order() -> None:
    reordered = {k: GOLDEN_CONFIG[k] for k in reversed(GOLDEN_CONFIG)}
    reordered["workload"] = dict(reversed(GOLDEN_CONFIG["workload"].items()))
    assert experiment_id(reordered) == GOLDEN_ID


def test_explicit_defaults_give_the_same_id(tmp_path: Path) -> None:
    explicit = """\
        schema_version: 1
        name: t
        experiment:
          workload: {seed: 0, kind: synthetic, input_tokens: 32.0}
          pytorch: {}
          warmup: {runs: 1}
          batch_size: 1
          backend: pytorch
          model: smollm2-135m
    """
    assert load(tmp_path, explicit).experiments[0].experiment_id == GOLDEN_ID


def test_id_changes_with_config(tmp_path: Path) -> None:
    suite = load(tmp_path, suite_text("{model: smollm2-135m, batch_size: 2}"))
    assert suite.experiments[0].experiment_id != GOLDEN_ID


def test_sweep_cartesian_product_in_key_order(tmp_path: Path) -> None:
    extra = "sweep:\n  batch_size: [1, 2, 4]\n  precision: [fp32, bf16]\n"
    suite = load(tmp_path, suite_text(extra=extra))
    assert len(suite.experiments) == 6
    assert [e.sweep_values for e in suite.experiments] == [
        {"batch_size": b, "precision": p} for b in (1, 2, 4) for p in ("fp32", "bf16")
    ]
    for e in suite.experiments:
        assert e.config["batch_size"] == e.sweep_values["batch_size"]
        assert e.config["precision"] == e.sweep_values["precision"]
    assert len({e.experiment_id for e in suite.experiments}) == 6
    assert set(suite.models) == {e.experiment_id for e in suite.experiments}
    assert suite.sweep == {"batch_size": [1, 2, 4], "precision": ["fp32", "bf16"]}


def test_sweep_applies_to_each_explicit_experiment(tmp_path: Path) -> None:
    extra = "experiments: [{precision: fp32}, {precision: bf16}]\nsweep: {batch_size: [1, 2]}\n"
    suite = load(tmp_path, suite_text(extra=extra))
    assert [(e.config["precision"], e.config["batch_size"]) for e in suite.experiments] == [
        ("fp32", 1),
        ("fp32", 2),
        ("bf16", 1),
        ("bf16", 2),
    ]


def test_dotted_paths_create_nested_keys(tmp_path: Path) -> None:
    extra = "sweep: {workload.input_tokens: [8, 16], pytorch.threads: [2]}\n"
    suite = load(tmp_path, suite_text(extra=extra))
    configs = [e.config for e in suite.experiments]
    # No workload written: the sweep varies the default (synthetic) workload.
    assert [c["workload"]["input_tokens"] for c in configs] == [8, 16]
    assert all(c["workload"]["kind"] == "synthetic" for c in configs)
    assert all(c["workload"]["output_tokens"] == 32 for c in configs)
    assert all(c["pytorch"] == {"threads": 2, "attn_implementation": None} for c in configs)
    assert configs[0]["workload"] == {**GOLDEN_CONFIG["workload"], "input_tokens": 8}


def test_sweep_over_workload_kind(tmp_path: Path) -> None:
    suite = load(tmp_path, suite_text(extra="sweep: {workload.kind: [synthetic, humaneval]}\n"))
    assert [e.config["workload"]["kind"] for e in suite.experiments] == ["synthetic", "humaneval"]
    assert suite.experiments[1].config["workload"]["num_prompts"] == 164


def test_sweep_over_models_and_mappings(tmp_path: Path) -> None:
    extra = "sweep:\n  model: [smollm2-135m, {alias: smollm2-135m}]\n  warmup: [{runs: 0}]\n"
    suite = load(tmp_path, suite_text(extra=extra))
    assert [e.config["model"] for e in suite.experiments] == [
        "smollm2-135m",
        {"alias": "smollm2-135m"},
    ]
    assert all(e.config["warmup"] == {"runs": 0} for e in suite.experiments)
    assert all(m["kind"] == "alias" for m in suite.models.values())


def test_sweep_values_are_independent_copies(tmp_path: Path) -> None:
    suite = load(tmp_path, suite_text(extra="sweep: {warmup: [{runs: 2}], batch_size: [1, 2]}\n"))
    first, second = suite.experiments
    assert first.config["warmup"] is not second.config["warmup"]
    assert suite.sweep["warmup"] == [{"runs": 2}]


def test_duplicate_grid_points_name_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    extra = "experiments: [{batch_size: 1}, {batch_size: 2}, {}]\n"
    with pytest.raises(UserError) as info:
        load(tmp_path, suite_text(extra=extra))
    message = str(info.value)
    assert "experiments[0] and experiments[2] expand to the same experiment" in message
    assert GOLDEN_ID in message


def test_duplicate_after_defaults(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"warmup=\{\} and sweep point warmup=\{runs: 1\}"):
        load(tmp_path, suite_text(extra="sweep: {warmup: [{}, {runs: 1}]}\n"))
