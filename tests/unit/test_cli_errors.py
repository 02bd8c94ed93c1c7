"""Bad input through the real ``lembench`` command: exit 2, one line naming file and key, no
traceback, nothing written under the results folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """schema_version: 1
name: cli-test
experiment:
  backend: pytorch
  model: smollm2-135m
"""

CASES = {
    "invalid_yaml": ("schema_version: 1\nname: [x\n", ["invalid YAML", "line"]),
    "unknown_key": (
        GOOD + "  bach_size: 4\n",
        ["experiment.bach_size", "did you mean 'batch_size'"],
    ),
    "wrong_type": (GOOD + "  batch_size: four\n", ["experiment.batch_size", "integer"]),
    "out_of_range": (GOOD + "cycles: 0\n", ["cycles", ">= 1"]),
    "bad_enum": (GOOD + "  precision: fp8\n", ["experiment.precision", "fp32"]),
    "unknown_backend": (
        GOOD.replace("pytorch", "pytorc"),
        ["experiment.backend", "did you mean 'pytorch'"],
    ),
    "missing_model_path": (
        GOOD.replace("smollm2-135m", "./no/such/model"),
        ["experiment.model", "does not exist"],
    ),
    "unknown_alias": (
        GOOD.replace("smollm2-135m", "smollm2-13m"),
        ["experiment.model", "smollm2-135m"],
    ),
    "missing_parent": ("_extends: base.yaml\n" + GOOD, ["_extends", "base.yaml", "not found"]),
    "missing_jsonl": (GOOD + "  workload: {kind: jsonl, path: prompts.jsonl}\n", ["prompts.jsonl"]),
    "bad_sweep_key": (GOOD + "sweep:\n  bach_size: [1, 2]\n", ["sweep", "bach_size", "batch_size"]),
    "bad_sweep_value": (GOOD + "sweep:\n  batch_size: [1, 0]\n", ["sweep.batch_size", ">= 1"]),
}


def lembench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_suite_is_one_line_exit_2_nothing_written(
    tmp_path: Path, case: str, command: str
) -> None:
    text, expected = CASES[case]
    (tmp_path / "suite.yaml").write_text(text)
    proc = lembench(command, "suite.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: suite.yaml: ")
    for part in expected:
        assert part in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_missing_suite_file(tmp_path: Path) -> None:
    proc = lembench("run", "nope.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: nope.yaml: file not found"
    assert not (tmp_path / "results").exists()


def test_results_show_unknown_id(tmp_path: Path) -> None:
    proc = lembench("results", "show", "deadbeef", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no stored run or experiment matches 'deadbeef'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_validate_prints_the_grid(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(GOOD + "sweep:\n  batch_size: [1, 2, 8]\n")
    proc = lembench("validate", "suite.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "3 experiments in 1 load group;" in proc.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("meters", "expected"),
    [
        ("[rapel]", "measurement.meters[0]: unknown meter 'rapel'; did you mean 'rapl'?"),
        ("[auto, nvml]", "measurement.meters[0]: 'auto' cannot be combined with named meters"),
    ],
)
def test_bad_meter_names(tmp_path: Path, meters: str, expected: str) -> None:
    (tmp_path / "suite.yaml").write_text(GOOD + f"measurement:\n  meters: {meters}\n")
    proc = lembench("validate", "suite.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: suite.yaml: {expected}")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", "--runtime", "x", "suite.yaml"), ["lembench run", "--runtime", "'local'"]),
        (("advise", ".", "--scenario", "nope"), ["lembench advise", "--scenario", "'chat'"]),
        (("run",), ["lembench run", "Missing argument 'SUITE'"]),
        (("nosuch",), ["lembench:", "No such command 'nosuch'"]),
    ],
)
def test_bad_options_and_arguments_are_one_line_exit_2(tmp_path, args, expected) -> None:
    proc = lembench(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Usage:" not in proc.stderr and "Traceback" not in proc.stderr
    for text in expected:
        assert text in lines[0]
    assert proc.stdout == ""
