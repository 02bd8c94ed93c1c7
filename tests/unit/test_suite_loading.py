"""Loading suites: settings and defaults, `_extends` inheritance, `experiments` lists, models."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from lembench.errors import UserError
from lembench.suite import Suite, fill_defaults, load_suite

MINIMAL = """\
schema_version: 1
name: t
experiment: {model: smollm2-135m}
"""


def write(folder: Path, name: str, text: str) -> Path:
    """Write dedented YAML ``text`` to ``folder/name`` (creating folders) and return the path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_minimal_suite_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", MINIMAL)
    suite = load_suite(path)
    assert isinstance(suite, Suite)
    assert suite.path == path.absolute()
    assert suite.base_dir == tmp_path
    assert suite.name == "t"
    assert suite.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert suite.sweep == {}
    assert len(suite.experiments) == 1
    assert suite.experiments[0].sweep_values == {}


def test_settings_defaults_filled(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "s.yaml", MINIMAL))
    assert suite.settings == {
        "runtime": "auto",
        "image": None,
        "network": "none",
        "gpus": "all",
        "cycles": 1,
        "order": "interleaved",
        "seed": 0,
        "gap_s": 0,
        "timeout_s": 1800,
        "measurement": {
            "meters": ["auto"],
            "country_iso_code": "USA",
            "region": None,
            "idle_baseline_s": 10,
            "baseline_cache_s": 600,
            "timeline_interval_s": 0.1,
            "cv_threshold": 0.1,
        },
        "gap": None,
        "convergence": None,
        "slurm": {
            **dict.fromkeys(
                ("partition", "account", "qos", "time", "gpus", "constraint", "cpus_per_task"),
                None,
            ),
            **dict.fromkeys(("mem", "throttle", "container_image", "python"), None),
            "extra": [],
            "inner": "local",
        },
        "description": "",
    }


def test_settings_as_written_win(tmp_path: Path) -> None:
    text = MINIMAL + "cycles: 3\norder: shuffled\nseed: 7\ndescription: hi\n"
    text += "measurement: {meters: [rapl]}\n"
    settings = load_suite(write(tmp_path, "s.yaml", text)).settings
    assert (settings["cycles"], settings["order"], settings["seed"]) == (3, "shuffled", 7)
    assert settings["description"] == "hi"
    assert settings["measurement"] == {
        "meters": ["rapl"],
        "country_iso_code": "USA",
        "region": None,
        "idle_baseline_s": 10,
        "baseline_cache_s": 600,
        "timeline_interval_s": 0.1,
        "cv_threshold": 0.1,
    }


def test_experiment_defaults_filled(tmp_path: Path) -> None:
    config = load_suite(write(tmp_path, "s.yaml", MINIMAL)).experiments[0].config
    assert config["backend"] == "pytorch"
    assert config["precision"] == "fp32"
    assert config["device"] == "auto"
    assert config["batch_size"] == 1
    assert config["warmup"] == {"runs": 1}
    assert config["pytorch"] == {"threads": None, "attn_implementation": None}
    assert config["workload"] == {
        "kind": "synthetic",
        "num_prompts": 8,
        "input_tokens": 32,
        "output_tokens": 32,
        "exact_output": True,
        "seed": 0,
    }


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        (
            {"kind": "humaneval"},
            {"kind": "humaneval", "num_prompts": 164, "output_tokens": 256, "exact_output": False},
        ),
        (
            {"kind": "jsonl", "path": "p.jsonl"},
            {
                "kind": "jsonl",
                "path": "p.jsonl",
                "field": "prompt",
                "num_prompts": None,
                "output_tokens": 128,
                "exact_output": False,
            },
        ),
        ({"kind": "nonsense", "x": 1}, {"kind": "nonsense", "x": 1}),  # left to the validator
    ],
)
def test_fill_defaults_picks_workload_branch_by_kind(workload: dict, expected: dict) -> None:
    assert fill_defaults({"workload": workload}, "/$defs/experiment")["workload"] == expected


def test_fill_defaults_does_not_modify_input_nor_fill_model() -> None:
    instance = {"model": {"hf": "org/name"}, "warmup": {}}
    filled = fill_defaults(instance, "/$defs/experiment")
    assert instance == {"model": {"hf": "org/name"}, "warmup": {}}
    assert filled["model"] == {"hf": "org/name"}
    assert filled["warmup"] == {"runs": 1}


def test_fill_defaults_top_level_measurement() -> None:
    filled = fill_defaults({"measurement": {"region": "x"}})
    assert filled["measurement"] == {
        "meters": ["auto"],
        "country_iso_code": "USA",
        "region": "x",
        "idle_baseline_s": 10,
        "baseline_cache_s": 600,
        "timeline_interval_s": 0.1,
        "cv_threshold": 0.1,
    }
    assert filled["cycles"] == 1


def test_model_alias_resolves(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "s.yaml", MINIMAL))
    (eid,) = suite.models
    assert eid == suite.experiments[0].experiment_id
    assert suite.models[eid]["kind"] == "alias"
    assert suite.models[eid]["ref"] == "smollm2-135m"


def test_model_relative_path_resolves_against_suite_folder(tmp_path: Path) -> None:
    write(tmp_path, "suites/models/tiny.gguf", "GGUF magic, the rest is not checked")
    path = write(tmp_path, "suites/s.yaml", MINIMAL.replace("smollm2-135m", "models/tiny.gguf"))
    suite = load_suite(path)
    resolved = next(iter(suite.models.values()))
    assert resolved["kind"] == "gguf"
    assert resolved["ref"] == str((tmp_path / "suites/models/tiny.gguf").resolve())


def test_jsonl_workload_file_found_relative_to_suite(tmp_path: Path) -> None:
    write(tmp_path, "suites/data/p.jsonl", '{"prompt": "hi"}\n')
    text = MINIMAL.replace(
        "{model: smollm2-135m}",
        "{model: smollm2-135m, workload: {kind: jsonl, path: data/p.jsonl}}",
    )
    suite = load_suite(write(tmp_path, "suites/s.yaml", text))
    assert suite.experiments[0].config["workload"]["path"] == "data/p.jsonl"  # as written


def test_experiments_list_merged_over_base(tmp_path: Path) -> None:
    text = """\
        schema_version: 1
        name: t
        experiment:
          model: smollm2-135m
          batch_size: 2
          workload: {kind: synthetic, input_tokens: 64}
        experiments:
          - {precision: bf16}
          - {batch_size: 8, workload: {output_tokens: 5}}
    """
    configs = [e.config for e in load_suite(write(tmp_path, "s.yaml", text)).experiments]
    assert [c["precision"] for c in configs] == ["bf16", "fp32"]
    assert [c["batch_size"] for c in configs] == [2, 8]
    assert configs[1]["workload"]["input_tokens"] == 64  # mappings merge deeply
    assert configs[1]["workload"]["output_tokens"] == 5


# --- _extends -------------------------------------------------------------------------------------


def test_extends_deep_merge_later_wins_lists_replace(tmp_path: Path) -> None:
    write(
        tmp_path,
        "base.yaml",
        """\
        schema_version: 1
        name: base
        cycles: 5
        measurement: {meters: [nvml, rapl], country_iso_code: FRA}
        experiment:
          model: smollm2-135m
          workload: {kind: synthetic, input_tokens: 16, output_tokens: 16}
        """,
    )
    child = write(
        tmp_path,
        "child.yaml",
        """\
        _extends: base.yaml
        name: child
        measurement: {meters: [rapl]}
        experiment:
          workload: {input_tokens: 99}
        """,
    )
    suite = load_suite(child)
    assert suite.name == "child"
    assert suite.settings["cycles"] == 5
    assert suite.settings["measurement"]["meters"] == ["rapl"]  # lists replace
    assert suite.settings["measurement"]["country_iso_code"] == "FRA"  # mappings merge
    workload = suite.experiments[0].config["workload"]
    assert (workload["input_tokens"], workload["output_tokens"]) == (99, 16)
    assert suite.sha256 == hashlib.sha256(child.read_bytes()).hexdigest()


def test_extends_list_in_order_and_nested_parents(tmp_path: Path) -> None:
    write(tmp_path, "common/root.yaml", "schema_version: 1\nname: root\ncycles: 2\nseed: 1\n")
    write(tmp_path, "common/a.yaml", "_extends: root.yaml\ncycles: 3\norder: sequential\n")
    write(tmp_path, "b.yaml", "cycles: 4\nexperiment: {model: smollm2-135m}\n")
    child = write(tmp_path, "suites/s.yaml", "_extends: [../common/a.yaml, ../b.yaml]\nname: s\n")
    suite = load_suite(child)
    assert suite.settings["cycles"] == 4  # b.yaml comes later than a.yaml
    assert suite.settings["order"] == "sequential"  # from a.yaml
    assert suite.settings["seed"] == 1  # from a.yaml's own parent
    assert suite.name == "s"


def test_extends_diamond_is_not_a_cycle(tmp_path: Path) -> None:
    write(tmp_path, "d.yaml", MINIMAL)
    write(tmp_path, "b.yaml", "_extends: d.yaml\ncycles: 2\n")
    write(tmp_path, "c.yaml", "_extends: d.yaml\nseed: 3\n")
    suite = load_suite(write(tmp_path, "a.yaml", "_extends: [b.yaml, c.yaml]\n"))
    assert (suite.settings["cycles"], suite.settings["seed"]) == (2, 3)


def test_extends_cycle_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.yaml", "_extends: b.yaml\n" + MINIMAL)
    write(tmp_path, "b.yaml", "_extends: a.yaml\n")
    with pytest.raises(UserError) as info:
        load_suite("a.yaml")
    assert str(info.value) == "b.yaml: _extends: inheritance cycle: a.yaml -> b.yaml -> a.yaml"


def test_extends_key_removed_and_parent_may_be_partial(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", "experiment: {batch_size: 3}\n")  # not a complete suite
    suite = load_suite(write(tmp_path, "s.yaml", "_extends: p.yaml\n" + MINIMAL))
    assert suite.experiments[0].config["batch_size"] == 3
    assert "_extends" not in suite.experiments[0].config
