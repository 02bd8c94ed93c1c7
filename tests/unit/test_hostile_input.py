"""Input a careless user or an attacker would give: one line naming the file and the key, exit 2,
no traceback, and never minutes of work first. Each case crashed, hung or passed before."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.backends.pytorch import check_context
from harness.workloads import WorkloadError
from lembench.errors import UserError
from lembench.suite import load_suite

GOOD = """schema_version: 3
name: hostile
experiment:
  backend: pytorch
  model: smollm2-135m
"""


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


LEMBENCH = [sys.executable, "-m", "lembench"]


def _lembench(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_line_exit_2(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("measurement: {idle_baseline_s: .nan}\n", "measurement.idle_baseline_s"),
        ("measurement: {baseline_cache_s: .inf}\n", "measurement.baseline_cache_s"),
        ("measurement: {cv_threshold: .nan}\n", "measurement.cv_threshold"),
        ("gap_s: -.inf\n", "gap_s"),
        ("timeout_s: .nan\n", "timeout_s"),  # silently disabled the timeout
        ("  decoding: {temperature: .nan}\n", "experiment.decoding.temperature"),
    ],
)
def test_nan_and_inf_are_refused_where_they_are_written(
    tmp_path: Path, extra: str, key: str
) -> None:
    with pytest.raises(UserError, match="not a usable number") as e:
        load_suite(_write(tmp_path, GOOD + extra))
    assert e.value.key == key


def test_deep_nesting_is_one_line(tmp_path: Path) -> None:
    _write(tmp_path, GOOD + "description: " + "[" * 3000 + "]" * 3000 + "\n")
    _one_line_exit_2(_lembench("validate", "s.yaml", cwd=tmp_path), "nested more than")


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\n" + GOOD
    assert len(bomb.encode()) < 1000
    start = time.monotonic()
    proc = _lembench("validate", _write(tmp_path, bomb).name, cwd=tmp_path)
    assert time.monotonic() - start < 20  # 40 s and more before, on a 460-byte file
    _one_line_exit_2(proc, "values once its aliases")


def test_oversized_suite_file(tmp_path: Path) -> None:
    _write(tmp_path, GOOD + "description: '" + "x" * (1024 * 1024) + "'\n")
    with pytest.raises(UserError, match="too large for a suite file"):
        load_suite(tmp_path / "s.yaml")


def test_too_long_paths_are_one_line(tmp_path: Path) -> None:
    long = "x" * 300
    for text, key in [
        (GOOD + f"  workload: {{kind: jsonl, path: {long}.jsonl}}\n", "experiment.workload.path"),
        (f"_extends: {long}.yaml\n" + GOOD, "_extends"),
    ]:
        with pytest.raises(UserError) as e:
            load_suite(_write(tmp_path, text))
        assert e.value.key == key


def test_results_folder_under_a_file(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    (tmp_path / "file").write_text("")
    proc = _lembench("run", "s.yaml", "--results-dir", "file/results", cwd=tmp_path)
    _one_line_exit_2(proc, "file/results", "a part of the path is a file")


def test_not_a_gguf_file_is_found_at_validate(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"<html>not a model</html>")
    with pytest.raises(UserError, match="not a GGUF file") as e:
        load_suite(_write(tmp_path, GOOD.replace("smollm2-135m", "./m.gguf")))
    assert e.value.key == "experiment.model"


def test_model_folder_without_config_json_is_found_at_validate(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(UserError, match=r"has no config\.json"):
        load_suite(_write(tmp_path, GOOD.replace("smollm2-135m", "./model")))
    (tmp_path / "model" / "config.json").write_text("{}")
    load_suite(tmp_path / "s.yaml")


def test_jsonl_line_without_prompt_is_found_at_validate(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"prompt": "hello"}\n{"text": "no prompt here"}\n')
    text = GOOD + "  workload: {kind: jsonl, path: p.jsonl}\n"
    with pytest.raises(UserError, match=r"p\.jsonl:2: field 'prompt' is missing") as e:
        load_suite(_write(tmp_path, text))
    assert e.value.key == "experiment.workload.path"


def test_pytorch_refuses_a_prompt_longer_than_the_context() -> None:
    """Before: transformers generated past the context until the 30-minute timeout."""
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=2048))
    check_context(model, 2000, 48)
    with pytest.raises(WorkloadError, match="exceeds the model's context of 2048"):
        check_context(model, 2000, 49)
    check_context(SimpleNamespace(config=SimpleNamespace()), 10**6, 10)  # unknown: not refused


def test_estimate_refuses_infinite_numbers(tmp_path: Path) -> None:
    proc = _lembench("estimate", "r", "--requests-per-month", "inf", cwd=tmp_path)
    _one_line_exit_2(proc, "--requests-per-month", "finite")


def test_results_show_with_an_empty_id(tmp_path: Path) -> None:
    _one_line_exit_2(_lembench("results", "show", "", cwd=tmp_path), "empty ID")


def test_export_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[1] / "data" / "runs"
    proc = subprocess.Popen(
        [*LEMBENCH, "results", "export", "--results-dir", str(data), "--format", "parquet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=False,
    )
    proc.stdout.close()  # `| head` that has already gone away
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "Error" not in err
    assert proc.returncode in (1, 141)  # click's and the shell's way to say "pipe closed"


# Property: any YAML document (of plain data) as a suite gives a Suite or a one-line UserError.
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)
_base = yaml.safe_load(GOOD)
_keys = st.sampled_from(
    [
        "schema_version",
        "name",
        "cycles",
        "order",
        "timeout_s",
        "gap_s",
        "sweep",
        "measurement",
        "experiment",
        "_extends",
        "description",
        "runtime",
        "seed",
        "gpus",
    ]
)
_experiment_keys = st.sampled_from(
    [
        "backend",
        "model",
        "batch_size",
        "precision",
        "workload",
        "decoding",
        "warmup",
        "traffic",
        "weights",
        "max_new_tokens",
        "device",
        "llamacpp",
        "openai",
        "pytorch",
    ]
)


@st.composite
def _suites(draw: st.DrawFn) -> object:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(_values)
    doc = json.loads(json.dumps(_base))
    if kind == 1:
        doc[draw(_keys)] = draw(_values)
    else:
        doc["experiment"][draw(_experiment_keys)] = draw(_values)
    return doc


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=_suites())
def test_any_document_is_a_suite_or_one_line(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_suite(path)
    except UserError as e:
        assert "\n" not in str(e)
        assert str(e)
