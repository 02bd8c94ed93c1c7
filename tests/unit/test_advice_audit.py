"""lembench audit: each static check on small .py and suite fixtures, clean files, measured
evidence present and absent, and every bad input (one line, exit 2)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from lembench.advice.audit import audit
from lembench.suite import load_suite
from tests.helpers.advice_runs import add, config
from tests.unit.test_advice_data import one_line_error, run_cli


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def codes(path: Path, results: Path | None = None) -> list[tuple[int, int, str]]:
    report = audit(path, results or path.parent / "no-results")
    return [(f.line, f.col, f.code) for f in report.findings]


# ---------------------------------------------------------------- Python


def test_int8_without_threshold(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.py",
        """
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig
        m = AutoModelForCausalLM.from_pretrained("org/Big-8B", load_in_8bit=True)
        q = BitsAndBytesConfig(load_in_8bit=True)
        ok = AutoModelForCausalLM.from_pretrained("x/B-8B", load_in_8bit=True, llm_int8_threshold=0)
        unknown = BitsAndBytesConfig(load_in_8bit=True, **extra)
    """,
    )
    assert codes(path) == [(2, 69, "int8_default_threshold"), (3, 37, "int8_default_threshold")]
    (first, _) = audit(path, tmp_path / "none").findings
    assert first.model == "org/Big-8B" and "default outlier threshold 6.0" in first.message


def test_four_bit_on_small_models(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "b.py",
        """
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig
        SMALL = "Qwen/Qwen2.5-0.5B-Instruct"
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
        a = AutoModelForCausalLM.from_pretrained(SMALL, quantization_config=bnb)
        b = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.2-1B", load_in_4bit=True)
        c = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.1-8B", load_in_4bit=True)
        d = AutoModelForCausalLM.from_pretrained("org/custom-model", load_in_4bit=True)
        e = AutoModelForCausalLM.from_pretrained(
            "HuggingFaceTB/SmolLM2-135M",
            quantization_config=BitsAndBytesConfig(bnb_4bit_quant_type="nf4", load_in_4bit=True),
        )
    """,
    )
    findings = audit(path, tmp_path / "none").findings
    assert [(f.line, f.code) for f in findings] == [
        (3, "four_bit_small_model"),  # the 4-bit keyword in the config that line 4 loads with
        (5, "four_bit_small_model"),
        (10, "four_bit_small_model"),
    ]
    assert "500M parameters, from the size in the model name" in findings[0].message
    assert "1.24B parameters, from the bundled architecture config" in findings[1].message
    # 8B is not small; org/custom-model states no size: no finding rather than a guess


def test_batch_size_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.py",
        """
        BATCH_SIZE = 1
        pipe = pipeline("text-generation", model="org/Big-8B", batch_size=1)

        def one_by_one(model, tok, prompts):
            for p in prompts:
                model.generate(**tok(p, return_tensors="pt"))

        def batched(model, tok, prompts):
            for i in range(0, len(prompts), 8):
                model.generate(**tok(prompts[i : i + 8], return_tensors="pt", padding=True))
            for batch in make_batches(prompts):
                model.generate(**tok(batch, return_tensors="pt", padding=True))
            model.generate(**tok(prompts, return_tensors="pt", padding=True))

        for name in ["a", "b"]:
            def later(model):
                model.generate(x)  # defined in a loop, not run per iteration
    """,
    )
    got = codes(path)
    assert got == [(1, 1, "batch_size_one"), (2, 67, "batch_size_one"), (6, 9, "batch_size_one")]
    report = audit(path, tmp_path / "none")
    assert "heuristic" in report.findings[2].message


def test_clean_python_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    path = write(
        tmp_path,
        "clean.py",
        """
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained("org/Big-8B", dtype="bfloat16")
        out = m.generate(**batch, max_new_tokens=64)
    """,
    )
    code, out, _ = run_cli(monkeypatch, capsys, "audit", str(path))
    assert code == 0
    checked = "int8_default_threshold, four_bit_small_model, batch_size_one"
    assert out.strip() == f"{path}: no findings (checked: {checked})"


def test_findings_exit_1_with_the_experiment_to_run(tmp_path: Path, monkeypatch, capsys) -> None:
    path = write(
        tmp_path,
        "d.py",
        """
        m = AutoModelForCausalLM.from_pretrained("org/Big-8B", load_in_8bit=True)
    """,
    )
    code, out, _ = run_cli(
        monkeypatch, capsys, "audit", str(path), "--results-dir", str(tmp_path / "r")
    )
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}:1:69: int8_default_threshold load_in_8bit=True without")
    assert lines[1] == "    to check it, run: measure it with a suite"
    experiment = "experiment: {backend: pytorch, model: org/Big-8B, device: cuda, precision: fp16}"
    assert lines[2] == " " * 8 + experiment
    assert lines[3] == "        sweep: {pytorch.quantization: [null, bnb_int8]}"
    assert "no results folder" in lines[-1]


# ---------------------------------------------------------------- evidence


def test_measured_evidence_for_the_same_model(tmp_path: Path, monkeypatch, capsys) -> None:
    results = tmp_path / "results"
    fp16 = add(results, config(model="synthetic/Model-8B"), j=0.40)
    int8 = add(results, config(model="synthetic/Model-8B", quantization="bnb_int8"), j=0.62)
    path = write(
        tmp_path,
        "e.py",
        """
        m = AutoModelForCausalLM.from_pretrained("synthetic/Model-8B", load_in_8bit=True)
    """,
    )
    (entry,) = audit(path, results).entries
    (ev,) = entry.evidence
    assert ev.kind == "measured" and ev.ids == (fp16, int8) and "+55%" in ev.text
    assert entry.suggestion is None
    code, out, _ = run_cli(
        monkeypatch, capsys, "audit", str(path), "--results-dir", str(results), "--json"
    )
    assert code == 1
    doc = json.loads(out)
    (f,) = doc["findings"]
    assert f["code"] == "int8_default_threshold" and f["suggestion"] is None
    assert f["evidence"][0]["ids"] == [fp16, int8]


def test_evidence_from_another_model_says_so(tmp_path: Path) -> None:
    results = tmp_path / "results"
    add(results, config(model="synthetic/Other-8B"), j=0.40)
    add(results, config(model="synthetic/Other-8B", quantization="bnb_int8"), j=0.62)
    path = write(tmp_path, "f.py", 'm = X.from_pretrained("org/Big-8B", load_in_8bit=True)\n')
    (entry,) = audit(path, results).entries
    (ev,) = entry.evidence
    assert ev.kind == "other_model" and ev.text.startswith("on another model (synthetic/Other-8B)")


def test_measured_without_the_penalty(tmp_path: Path) -> None:
    results = tmp_path / "results"
    add(results, config(model="synthetic/Model-8B"), j=0.40)
    add(results, config(model="synthetic/Model-8B", quantization="bnb_int8"), j=0.35)
    path = write(
        tmp_path, "g.py", 'm = X.from_pretrained("synthetic/Model-8B", load_in_8bit=True)\n'
    )
    (entry,) = audit(path, results).entries
    (ev,) = entry.evidence
    assert ev.kind == "no_penalty" and "no penalty measured here" in ev.text


def test_batch_evidence_from_lever_steps(tmp_path: Path) -> None:
    results = tmp_path / "results"
    one = add(results, config(model="synthetic/Model-8B", batch_size=1), j=1.0)
    eight = add(results, config(model="synthetic/Model-8B", batch_size=8), j=0.25)
    path = write(tmp_path, "h.py", 'pipe = pipeline(model="synthetic/Model-8B", batch_size=1)\n')
    (entry,) = audit(path, results).entries
    assert entry.evidence[0].ids == (one, eight)
    assert "batch 1 uses x4 the energy per token of batch 8" in entry.evidence[0].text


# ---------------------------------------------------------------- suites

SUITE = """
schema_version: 3
name: audited
experiment:
  backend: pytorch
  model: {model}
  precision: fp16
  pytorch:
    quantization: {quant}
"""


def test_suite_int8_and_batch_one(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SUITE.format(model="org/Big-8B", quant="bnb_int8"))
    report = audit(path, tmp_path / "none")
    assert [(f.line, f.col, f.code) for f in report.findings] == [
        (3, 1, "batch_size_one"),  # batch_size not written: at the experiment
        (8, 5, "int8_default_threshold"),
    ]
    batch, int8 = report.findings
    assert "batch_size is not set: the default is 1" in batch.message
    (eid,) = int8.experiment_ids
    assert int8.message.endswith(f"(1 experiment: {eid[:8]})")


def test_suite_sweep_and_four_bit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        """
        schema_version: 3
        name: audited
        experiment:
          backend: pytorch
          model: Qwen/Qwen2.5-0.5B-Instruct
          precision: fp16
        sweep:
          pytorch.quantization: [null, bnb_nf4, bnb_int8]
          batch_size: [1, 8]
    """,
    )
    report = audit(path, tmp_path / "none")
    assert [(f.line, f.code) for f in report.findings] == [
        (8, "four_bit_small_model"),  # the sweep line that sets pytorch.quantization
        (8, "int8_default_threshold"),
    ]
    four = report.findings[0]
    assert len(four.experiment_ids) == 2  # batch 1 and 8
    assert "500M parameters" in four.message


def test_clean_suite(tmp_path: Path, monkeypatch, capsys) -> None:
    path = write(
        tmp_path,
        "u.yaml",
        """
        schema_version: 3
        name: audited
        experiment:
          backend: pytorch
          model: org/Big-8B
          precision: fp16
          pytorch: {quantization: bnb_int8, llm_int8_threshold: 0.0}
        sweep:
          batch_size: [1, 8]
    """,
    )
    code, out, _ = run_cli(monkeypatch, capsys, "audit", str(path))
    assert code == 0 and "no findings" in out


def test_suite_evidence_for_its_own_experiments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "v.yaml",
        """
        schema_version: 3
        name: audited
        experiment:
          backend: pytorch
          model: org/Big-8B
          precision: fp16
          device: cuda
        sweep:
          pytorch.quantization: [null, bnb_int8]
          batch_size: [8]
    """,
    )
    suite = load_suite(path)
    results = tmp_path / "results"
    ids = [
        add(results, e.config, j=0.62 if e.config["pytorch"]["quantization"] else 0.40)
        for e in suite.experiments
    ]
    assert ids == [e.experiment_id for e in suite.experiments]
    report = audit(path, results)
    (int8,) = [e for e in report.entries if e.finding.code == "int8_default_threshold"]
    (ev,) = int8.evidence
    assert ev.kind == "measured" and set(ev.ids) == set(ids)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.py", "def f(:\n", "bad.py: line 1: not valid Python"),
        ("notes.txt", "hello\n", "unsupported file type .txt"),
        ("bad.yaml", "schema_version: 3\nname: x\nexperiment: {batch_size: 0}\n", "bad.yaml"),
        ("broken.yaml", "a: [1,\n", "broken.yaml"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, monkeypatch, capsys, name, text, fragment) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, out, err = run_cli(monkeypatch, capsys, "audit", str(path))
    one_line_error(code, err, fragment)
    assert out == ""


def test_missing_file_and_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "audit", str(tmp_path / "gone.py"))
    one_line_error(code, err, "gone.py: no such file")
    code, _, err = run_cli(monkeypatch, capsys, "audit", str(tmp_path))
    one_line_error(code, err, "is a folder")


def test_undecodable_python(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "latin.py"
    path.write_bytes(b"x = '\xff\xfe'\n")
    code, _, err = run_cli(monkeypatch, capsys, "audit", str(path))
    one_line_error(code, err, "latin.py: cannot read it")


def test_suite_under_traffic_is_not_batch_size_one(tmp_path: Path) -> None:
    # With traffic the serving engine batches the requests in flight; batch_size does not apply.
    text = """
        schema_version: 3
        name: served
        experiment:
          backend: openai
          model: org/Big-8B
          openai: {base_url: "http://127.0.0.1:8000/v1"}
          workload: {kind: synthetic, num_prompts: 8, input_tokens: 16, output_tokens: 16}
          traffic: {pattern: concurrency, concurrency: 8}
    """
    report = audit(write(tmp_path, "served.yaml", text), tmp_path / "none")
    assert [f.code for f in report.findings] == []
    static = text.replace("          traffic: {pattern: concurrency, concurrency: 8}\n", "")
    report = audit(write(tmp_path, "static.yaml", static), tmp_path / "none")
    assert [f.code for f in report.findings] == ["batch_size_one"]
