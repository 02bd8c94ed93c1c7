"""Bad suites: every problem is one line,
`<file>: <key path>: <what is wrong>; <what is allowed>`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lembench.errors import UserError
from lembench.suite import load_suite

HEAD = "schema_version: 1\nname: t\n"
OK = HEAD + "experiment: {model: smollm2-135m}\n"


def exp(fields: str, extra: str = "") -> str:
    """A suite whose base experiment is ``{model: smollm2-135m, <fields>}``."""
    return HEAD + f"experiment: {{model: smollm2-135m, {fields}}}\n" + extra


# (suite text, expected exact message or substrings). Messages are exact where the wording is the
# point; substrings where a list of allowed values may grow.
CASES = [
    # --- reading the file
    pytest.param(
        HEAD + "experiment: {model: [\n",
        ("s.yaml: invalid YAML at line 4, column 1:",),
        id="invalid yaml",
    ),
    pytest.param(
        HEAD + "\texperiment: {}\n",
        ("s.yaml: invalid YAML at line 3, column 1:", "'\\t'"),
        id="tab",
    ),
    pytest.param(
        HEAD + "name: u\nexperiment: {}\n",
        "s.yaml: invalid YAML at line 3, column 1: duplicate key 'name'",
        id="duplicate key",
    ),
    pytest.param("", ("s.yaml: file is empty",), id="empty"),
    pytest.param("# nothing\n", ("s.yaml: file is empty",), id="only comments"),
    pytest.param(
        "- a\n- b\n",
        "s.yaml: top level must be a mapping (key: value lines), got list",
        id="top level list",
    ),
    pytest.param(
        "hello\n", ("s.yaml: top level must be a mapping", "got string"), id="top level scalar"
    ),
    pytest.param(
        exp("1: 2"),
        "s.yaml: experiment: key 1 is read as integer, not text; quote it",
        id="non-text key",
    ),
    pytest.param(
        OK + "yes: 1\n", "s.yaml: key true is read as boolean, not text; quote it", id="yes key"
    ),
    pytest.param(
        OK + "description: 2024-01-01\n",
        ("s.yaml: description: YAML reads 2024-01-01 as a date",),
        id="date value",
    ),
    pytest.param(None, ("s.yaml: not UTF-8 text",), id="not utf-8"),
    # --- top level
    pytest.param(
        OK + "cycels: 2\n",
        ("s.yaml: cycels: unknown key; did you mean 'cycles'? (allowed: ", "experiment"),
        id="unknown top key",
    ),
    pytest.param(
        "schema_version: 1\nexperiment: {}\n",
        "s.yaml: name: required key missing",
        id="missing name",
    ),
    pytest.param(HEAD, "s.yaml: experiment: required key missing", id="missing experiment"),
    pytest.param(
        OK.replace("schema_version: 1", "schema_version: 5"),
        "s.yaml: schema_version: 5 is not allowed; allowed: 1, 2, 3, 4",
        id="schema_version",
    ),
    pytest.param(
        OK.replace("name: t", "name: My Suite"),
        (
            "s.yaml: name: must start with a lowercase letter or digit",
            "lowercase letters, digits, '.', '_', '-'",
            "(got 'My Suite')",
        ),
        id="name pattern",
    ),
    pytest.param(OK + "cycles: 0\n", "s.yaml: cycles: must be >= 1 (got 0)", id="cycles range"),
    pytest.param(
        OK + "timeout_s: 0\n", "s.yaml: timeout_s: must be > 0 (got 0)", id="timeout exclusive"
    ),
    pytest.param(
        OK + "order: random\n",
        "s.yaml: order: 'random' is not allowed; allowed: sequential, interleaved, shuffled",
        id="order enum",
    ),
    pytest.param(
        OK + "runtime: dockr\n",
        "s.yaml: runtime: 'dockr' is not allowed; did you mean 'docker'? "
        "allowed: auto, local, docker, slurm",
        id="runtime enum",
    ),
    pytest.param(
        OK + "measurement: {meters: [nvml, nvml]}\n",
        ("s.yaml: measurement.meters: must not list the same value twice",),
        id="meters unique",
    ),
    pytest.param(
        OK + "measurement: {meters: [nvm]}\n",
        "s.yaml: measurement.meters[0]: unknown meter 'nvm'; did you mean 'nvml'? "
        "(allowed: amdsmi, apple, codecarbon, nvml, rapl)",
        id="meter name",
    ),
    pytest.param(
        OK + "measurement: {country_iso_code: us}\n",
        ("s.yaml: measurement.country_iso_code: must be an ISO 3166-1 alpha-3", "(got 'us')"),
        id="country",
    ),
    pytest.param(
        HEAD + "experiment:\n",
        "s.yaml: experiment: expected mapping, got null; write {} for an empty mapping",
        id="experiment null",
    ),
    pytest.param(
        OK + "experiments: []\n", "s.yaml: experiments: must not be empty", id="experiments empty"
    ),
    # --- experiment fields
    pytest.param(
        exp("bach_size: 4"),
        (
            "s.yaml: experiment.bach_size: unknown key; did you mean 'batch_size'? (allowed: "
            "backend, batch_size, batching, decoding, device,",
        ),
        id="unknown experiment key",
    ),
    pytest.param(
        exp("batch_size: four"),
        "s.yaml: experiment.batch_size: expected integer, got string 'four'",
        id="wrong type",
    ),
    pytest.param(
        exp("batch_size: 4.5"),
        "s.yaml: experiment.batch_size: expected integer, got number 4.5",
        id="not an integer",
    ),
    pytest.param(
        exp("batch_size: 0"),
        "s.yaml: experiment.batch_size: must be >= 1 (got 0)",
        id="batch range",
    ),
    pytest.param(
        exp("precision: fp8"),
        "s.yaml: experiment.precision: 'fp8' is not allowed; allowed: fp32, fp16, bf16",
        id="precision enum",
    ),
    pytest.param(
        exp("precision: fp61"),
        ("'fp61' is not allowed; did you mean 'fp16'?", "allowed: fp32, fp16, bf16"),
        id="precision close",
    ),
    pytest.param(
        exp("device: gpu"),
        "s.yaml: experiment.device: must be auto, cpu, cuda or cuda:N (N: a GPU index) (got 'gpu')",
        id="device pattern",
    ),
    pytest.param(
        exp("warmup: {run: 1}"),
        "s.yaml: experiment.warmup.run: unknown key; did you mean 'runs'? "
        "(allowed: cv_threshold, cv_window, max_runs, runs)",
        id="warmup key",
    ),
    pytest.param(
        exp("warmup: 3"),
        "s.yaml: experiment.warmup: expected mapping, got integer 3",
        id="warmup type",
    ),
    pytest.param(
        exp("pytorch: {attn_implementation: flash}"),
        "s.yaml: experiment.pytorch.attn_implementation: 'flash' is not allowed; allowed: eager, "
        "sdpa, flash_attention_2, flex_attention, null",
        id="pytorch enum",
    ),
    pytest.param(
        HEAD + "experiment: {}\n",
        "s.yaml: experiment.model: required key missing",
        id="missing model",
    ),
    pytest.param(
        OK + "experiments: [{}, {batch_size: x}]\n",
        "s.yaml: experiments[1].batch_size: expected integer, got string 'x'",
        id="experiments[i] error",
    ),
    # --- workload (a oneOf, told apart by kind)
    pytest.param(
        exp("workload: {kind: synthetic, input_tokens: 0}"),
        "s.yaml: experiment.workload.input_tokens: must be >= 1 (got 0)",
        id="workload range",
    ),
    pytest.param(
        exp("workload: {kind: synthetic, input_tokenz: 3}"),
        (
            "s.yaml: experiment.workload.input_tokenz: unknown key for kind 'synthetic'; did you "
            "mean 'input_tokens'? (allowed: ",
            "seed",
        ),
        id="workload key",
    ),
    pytest.param(
        exp("workload: {kind: humaneval, num_prompts: 500}"),
        "s.yaml: experiment.workload.num_prompts: must be <= 164 (got 500)",
        id="workload other kind",
    ),
    pytest.param(
        exp("workload: {kind: synthetc}"),
        "s.yaml: experiment.workload.kind: 'synthetc' is not allowed; did you mean 'synthetic'? "
        "allowed: synthetic, humaneval, jsonl",
        id="workload kind",
    ),
    pytest.param(
        exp("workload: {input_tokens: 3}"),
        "s.yaml: experiment.workload.kind: required key missing; one of: synthetic, humaneval, "
        "jsonl",
        id="workload no kind",
    ),
    pytest.param(
        exp("workload: {kind: jsonl}"),
        "s.yaml: experiment.workload.path: required key missing",
        id="jsonl no path",
    ),
    pytest.param(
        exp("workload: {kind: synthetic, input_tokens: 0}", "experiments: [{batch_size: 2}]\n"),
        ("s.yaml: experiment.workload.input_tokens: must be >= 1 (got 0)",),
        id="workload from base in experiments",
    ),
    pytest.param(
        OK + "experiments: [{}, {workload: {kind: synthetic, seed: -1}}]\n",
        "s.yaml: experiments[1].workload.seed: must be >= 0 (got -1)",
        id="workload in experiments",
    ),
    # --- model (a oneOf: string or mapping)
    pytest.param(
        exp("").replace("model: smollm2-135m, ", "model: 5"),
        "s.yaml: experiment.model: expected string or mapping, got integer 5",
        id="model type",
    ),
    pytest.param(
        HEAD + "experiment: {model: {alias: smollm2-135m, hf: a/b}}\n",
        "s.yaml: experiment.model: must name exactly one of alias, path, hf (got alias, hf)",
        id="model two kinds",
    ),
    pytest.param(
        HEAD + "experiment: {model: {aliass: smollm2-135m}}\n",
        ("s.yaml: experiment.model.aliass: unknown key; did you mean 'alias'?",),
        id="model unknown key",
    ),
    pytest.param(
        HEAD + "experiment: {model: {}}\n",
        "s.yaml: experiment.model: must not be empty",
        id="model empty mapping",
    ),
    pytest.param(
        HEAD + "experiment: {model: {hf: not-an-id}}\n",
        ("s.yaml: experiment.model.hf: must be a Hugging Face id of the form org/name",),
        id="model hf pattern",
    ),
    pytest.param(
        HEAD + "experiment: {model: smollm3-135m}\n",
        (
            "s.yaml: experiment.model: 'smollm3-135m' is not a model alias",
            "did you mean 'smollm2-135m'?",
        ),
        id="unknown alias",
    ),
    pytest.param(
        HEAD + "experiment: {model: {alias: smolm2-135m}}\n",
        (
            "s.yaml: experiment.model: unknown model alias 'smolm2-135m'; did you mean "
            "'smollm2-135m'?",
        ),
        id="unknown alias object",
    ),
    pytest.param(
        HEAD + "experiment: {model: ./nope}\n",
        ("s.yaml: experiment.model: model path ", "nope does not exist"),
        id="missing model path",
    ),
    # --- semantic checks
    pytest.param(
        exp("backend: pytorh"),
        "s.yaml: experiment.backend: unknown backend 'pytorh'; did you mean 'pytorch'? (allowed: "
        "llamacpp, lmstudio, mlx, ollama, openai, pytorch, sglang, tensorrt-llm, vllm)",
        id="unknown backend",
    ),
    pytest.param(
        exp("workload: {kind: jsonl, path: p.jsonl}"),
        ("s.yaml: experiment.workload.path: file 'p.jsonl' not found (looked at ", "p.jsonl)"),
        id="jsonl missing",
    ),
    # --- sweep
    pytest.param(
        OK + "sweep: {batch_size: [1, 0]}\n",
        "s.yaml: sweep.batch_size: must be >= 1 (got 0)",
        id="sweep range",
    ),
    pytest.param(
        OK + "sweep: {bach_size: [1]}\n",
        (
            "s.yaml: sweep.bach_size: unknown key; did you mean 'batch_size'? (allowed: backend, "
            "batch_size,",
        ),
        id="sweep unknown key",
    ),
    pytest.param(
        OK + "sweep: {workload.input_tokenz: [1]}\n",
        (
            "s.yaml: sweep.workload.input_tokenz: unknown key; did you mean "
            "'workload.input_tokens'? (allowed in workload: ",
        ),
        id="sweep unknown nested key",
    ),
    pytest.param(
        OK + "sweep: {pytorh.threads: [1]}\n",
        ("s.yaml: sweep.pytorh.threads: unknown key 'pytorh'; did you mean 'pytorch'?",),
        id="sweep unknown middle key",
    ),
    pytest.param(
        OK + "sweep: {batch_size.x: [1]}\n",
        "s.yaml: sweep.batch_size.x: batch_size has no keys inside it; sweep batch_size itself",
        id="sweep into scalar",
    ),
    pytest.param(
        OK + "sweep: {model.alias: [smollm2-135m]}\n",
        "s.yaml: sweep.model.alias: cannot set it: experiment.model is string 'smollm2-135m', "
        "not a mapping",
        id="sweep into string model",
    ),
    pytest.param(
        OK + "sweep: {batch_size: 4}\n",
        "s.yaml: sweep.batch_size: expected list, got integer 4; write [4] for a single value",
        id="sweep not a list",
    ),
    pytest.param(
        OK + "sweep: {batch_size: []}\n",
        "s.yaml: sweep.batch_size: must not be empty",
        id="sweep empty list",
    ),
    pytest.param(
        OK + "sweep: {Batch: [4]}\n",
        "s.yaml: sweep.Batch: invalid key name; must be a dotted path of lowercase keys, e.g. "
        "workload.input_tokens",
        id="sweep key name",
    ),
    pytest.param(
        OK + "sweep: {batch_size: [1, 2, 1]}\n",
        "s.yaml: sweep.batch_size: value 1 is listed twice; list each value once",
        id="sweep value twice",
    ),
    pytest.param(
        OK + "sweep: {workload: [{kind: synthetic}], workload.seed: [1]}\n",
        "s.yaml: sweep.workload.seed: overlaps sweep.workload; sweep one or the other",
        id="sweep overlap",
    ),
    pytest.param(
        OK + "sweep: {workload: [{kind: synthetic}, {kind: synthetic, input_tokens: 0}]}\n",
        "s.yaml: sweep.workload[1].input_tokens: must be >= 1 (got 0)",
        id="sweep mapping value",
    ),
    pytest.param(
        OK + "sweep: {backend: [pytorch, vlm]}\n",
        ("s.yaml: sweep.backend: unknown backend 'vlm'",),
        id="sweep backend",
    ),
    pytest.param(
        exp(
            "workload: {kind: synthetic, input_tokens: 4}",
            "sweep: {workload.kind: [synthetic, humaneval]}\n",
        ),
        (
            "s.yaml: experiment.workload.input_tokens: unknown key for kind 'humaneval'",
            "(at sweep point workload.kind='humaneval')",
        ),
        id="sweep kind breaks base",
    ),
    pytest.param(
        OK + "sweep: {warmup: [{}, {runs: 1}]}\n",
        (
            "s.yaml: sweep point warmup={} and sweep point warmup={runs: 1} expand to the same "
            "experiment ",
        ),
        id="sweep duplicate after defaults",
    ),
    # --- _extends
    pytest.param(
        "_extends: 5\n" + OK,
        "s.yaml: _extends: expected a file name or a list of file names (relative to this file), "
        "got 5",
        id="extends type",
    ),
    pytest.param(
        "_extends: base.yaml\n" + OK,
        ("s.yaml: _extends: file 'base.yaml' not found (looked at /", "/base.yaml)"),
        id="extends missing",
    ),
    pytest.param(
        "_extends: s.yaml\n" + OK,
        "s.yaml: _extends: inheritance cycle: s.yaml -> s.yaml",
        id="extends self",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_bad_suite_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str | None,
    expected: str | tuple[str, ...],
) -> None:
    monkeypatch.chdir(tmp_path)
    data = b"schema_version: 1\nname: \xff\n" if text is None else text.encode("utf-8")
    (tmp_path / "s.yaml").write_bytes(data)
    with pytest.raises(UserError) as info:
        load_suite("s.yaml")
    message = str(info.value)
    assert message.startswith("s.yaml: ")
    assert "\n" not in message
    assert "Traceback" not in message and "is not valid under any" not in message
    if isinstance(expected, str):
        assert message == expected
    else:
        for part in expected:
            assert part in message, message


def test_file_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as info:
        load_suite("missing.yaml")
    assert str(info.value) == "missing.yaml: file not found"


def test_directory_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(UserError, match=r"^d\.yaml: is a directory"):
        load_suite("d.yaml")


def test_broken_parent_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites" / "common").mkdir(parents=True)
    (tmp_path / "suites" / "common" / "base.yaml").write_text("cycles: [1\n", encoding="utf-8")
    (tmp_path / "suites" / "s.yaml").write_text("_extends: common/base.yaml\n" + OK, "utf-8")
    with pytest.raises(UserError) as info:
        load_suite("suites/s.yaml")
    assert str(info.value).startswith("suites/common/base.yaml: invalid YAML at line 2, column 1: ")


def test_missing_grandparent_names_its_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("_extends: [gone.yaml]\n", encoding="utf-8")
    (tmp_path / "s.yaml").write_text("_extends: p.yaml\n" + OK, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_suite("s.yaml")
    assert str(info.value) == (
        f"p.yaml: _extends: file 'gone.yaml' not found (looked at {tmp_path / 'gone.yaml'})"
    )


def test_error_attributes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(exp("batch_size: 0"), encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_suite("s.yaml")
    assert (info.value.file, info.value.key) == ("s.yaml", "experiment.batch_size")
    assert info.value.exit_code == 2
