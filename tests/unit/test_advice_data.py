"""lembench.advice.data and the advice commands' input errors (one line, exit 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lembench.advice.data import gguf_bits, gguf_type, load, short_ids, workload_shape
from lembench.advice.sizes import model_params, params_from_name
from lembench.cli import main
from lembench.errors import UserError
from tests.helpers.advice_runs import add, config


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    """Run ``lembench ARGS`` in process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["lembench", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    for f in fragments:
        assert f in lines[0], lines[0]


def test_root_and_suite_folder_give_the_same_experiments(tmp_path: Path) -> None:
    a = add(tmp_path, config(batch_size=1), j=1.0)
    b = add(tmp_path, config(batch_size=8), j=0.2, suite="synthetic-other")
    root = load(tmp_path)
    assert {e.experiment_id for e in root.experiments} == {a, b}
    assert root.suite is None
    folder = load(tmp_path / "synthetic-advice")
    assert [e.experiment_id for e in folder.experiments] == [a]
    assert folder.suite == "synthetic-advice" and folder.root == tmp_path.resolve()
    narrowed = load(tmp_path, "synthetic-other")
    assert [e.experiment_id for e in narrowed.experiments] == [b]


def test_fields_the_levers_need(tmp_path: Path) -> None:
    eid = add(
        tmp_path,
        config(quantization="bnb_int8", threshold=0.0, batch_size=4),
        j=1.0,
        params=1_240_000_000,
        co2_intensity=350.0,
    )
    nf4 = add(tmp_path, config(quantization="bnb_nf4", double_quant=True), j=1.0, params=600)
    e = {x.experiment_id: x for x in load(tmp_path).experiments}
    x = e[eid]
    assert (x.quantization, x.quant_bits, x.int8_threshold) == ("bnb_int8", 8, 0.0)
    assert x.quant_label == "bnb_int8 (threshold 0)"
    assert x.batch_size == 4 and x.precision == "fp16" and x.backend == "pytorch"
    assert x.workload == "synthetic 256->128" and x.output_tokens == 128
    assert x.hardware == "NVIDIA H100 80GB HBM3" and not x.is_estimate
    assert x.co2_intensity == 350.0 and "DEU" in (x.co2_source or "")
    s = x.stat("j_per_output_token")
    assert s is not None and s.n == 3 and s.low < 1.0 < s.high
    # a 4-bit model records its packed parameters: the model's largest count is used
    assert e[nf4].params == 1_240_000_000 and e[nf4].double_quant is True
    assert e[nf4].quant_label == "bnb_nf4 double_quant" and e[nf4].quant_bits == 4


def test_default_threshold_is_none_and_labelled(tmp_path: Path) -> None:
    add(tmp_path, config(quantization="bnb_int8"), j=1.0)
    (x,) = load(tmp_path).experiments
    assert x.int8_threshold is None
    assert x.quant_label == "bnb_int8 (threshold 6.0, default)"


def test_estimates_are_flagged(tmp_path: Path) -> None:
    add(tmp_path, config(), j=1.0, estimate=True, hardware=None)
    (x,) = load(tmp_path).experiments
    assert x.is_estimate and x.energy_kind == "estimate"
    assert x.energy_method == "estimate_codecarbon" and x.on_cpu


def test_helpers() -> None:
    assert gguf_type("SmolLM2-135M-Instruct.Q4_1.gguf") == "Q4_1"
    assert gguf_type("/m/llama-3-8b.Q4_K_M.gguf") == "Q4_K_M"
    assert gguf_type("smollm2-135m") == "Q4_1"
    assert gguf_type("model.gguf") is None
    assert gguf_bits("Q4_K_M") == 4 and gguf_bits("F16") == 16 and gguf_bits("IQ3_XXS") == 3
    assert workload_shape({"kind": "synthetic", "input_tokens": 32, "output_tokens": 8}) == (
        "synthetic 32->8"
    )
    assert workload_shape({"kind": "jsonl", "path": "/a/p.jsonl", "output_tokens": 9}) == (
        "jsonl p.jsonl ->9"
    )
    ids = short_ids(["abcdef012345", "abcdef019999", "123456789abc"])
    assert ids == {
        "abcdef012345": "abcdef012",
        "abcdef019999": "abcdef019",
        "123456789abc": "12345678",
    }


def test_model_sizes() -> None:
    assert params_from_name("HuggingFaceTB/SmolLM2-135M-Instruct") == 135_000_000
    assert params_from_name("Qwen/Qwen2.5-1.5B") == 1_500_000_000
    assert params_from_name("Qwen/Qwen3-30B-A3B") == 30_000_000_000  # not the active 3B
    assert params_from_name("mistralai/Mixtral-8x7B-v0.1") is None  # no guess
    assert params_from_name("gpt2") is None
    # bundled architecture: Llama-3.2-1B has 1.24B parameters (1,235,814,400)
    count, how = model_params("meta-llama/Llama-3.2-1B")
    assert count == 1_235_814_400 and how == "bundled architecture config"
    count, _ = model_params("meta-llama/Llama-3.1-8B")
    assert count == 8_030_261_248


def test_local_folder_config(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(
        '{"vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, '
        '"intermediate_size": 128, "num_attention_heads": 4, "tie_word_embeddings": true}'
    )
    count, how = model_params("m", tmp_path)
    # embedding 64000 + 2 x (attention 4x64x64 + mlp 3x64x128 + norms 128) + final norm 64
    assert count == 64000 + 2 * (16384 + 24576 + 128) + 64
    assert how.endswith("config.json")


@pytest.mark.parametrize("command", [["advise"], ["estimate", "--requests-per-month", "10"]])
def test_missing_and_empty_results_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command
) -> None:
    code, _, err = run_cli(monkeypatch, capsys, command[0], str(tmp_path / "nope"), *command[1:])
    one_line_error(code, err, "does not exist")
    code, _, err = run_cli(monkeypatch, capsys, command[0], str(tmp_path), *command[1:])
    one_line_error(code, err, "no stored runs under")


def test_suite_mismatch_and_unknown_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add(tmp_path, config(), j=1.0)
    code, _, err = run_cli(
        monkeypatch, capsys, "advise", str(tmp_path / "synthetic-advice"), "--suite", "other"
    )
    one_line_error(code, err, "is the folder of suite 'synthetic-advice'", "--suite other")
    code, _, err = run_cli(monkeypatch, capsys, "advise", str(tmp_path), "--suite", "other")
    one_line_error(code, err, "no stored runs", "'other'")


def test_mixed_measured_and_estimated_runs_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config()
    add(tmp_path, cfg, j=1.0, spread=(1.0,))
    # a second cycle of the same experiment, estimated: store it as cycle 2
    from lembench.report import synthetic
    from lembench.store import ResultStore

    doc, _ = synthetic.result(cfg, suite="synthetic-advice", cycle=2, estimate=True, timeline=False)
    ResultStore(tmp_path).store(doc)
    with pytest.raises(UserError, match="mixes measured and estimated"):
        load(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "advise", str(tmp_path))
    one_line_error(code, err, "--allow-mixed")
    (x,) = load(tmp_path, allow_mixed=True).experiments
    assert x.is_estimate  # merged runs count as an estimate
