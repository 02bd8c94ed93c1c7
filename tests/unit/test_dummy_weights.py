"""Bundled architectures for ``weights: dummy``: lookup, folders, token ids, and each config
checked against the real model's published parameter count (built on the meta device: no memory)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.models import dummy_weights
from harness.models.dummy_weights import (
    bundled_config,
    bundled_model_ids,
    config_dir,
    dummy_vocab_token_ids,
    model_config,
)

# Parameter counts of the real checkpoints (model cards / safetensors index totals).
KNOWN_PARAMS = {
    "meta-llama/Llama-3.2-1B": 1.24e9,
    "meta-llama/Llama-3.2-3B": 3.21e9,
    "meta-llama/Llama-3.1-8B": 8.03e9,
    "meta-llama/Llama-3.1-8B-Instruct": 8.03e9,
    "Qwen/Qwen2.5-7B": 7.62e9,
    "Qwen/Qwen2.5-14B": 14.77e9,
    "mistralai/Mistral-7B-v0.3": 7.25e9,
    "mistralai/Mistral-7B-Instruct-v0.3": 7.25e9,
    "Qwen/Qwen3-8B": 8.19e9,
    "01-ai/Yi-1.5-9B": 8.83e9,
}


def test_every_required_model_is_bundled_with_a_source_note() -> None:
    assert sorted(bundled_model_ids(), key=str.lower) == bundled_model_ids()
    assert set(KNOWN_PARAMS) == set(bundled_model_ids())
    for model_id in bundled_model_ids():
        assert len(dummy_weights.source_note(model_id)) > 20
        assert not any(k.startswith("_lembench") for k in bundled_config(model_id))


def test_lookup_is_case_insensitive_and_returns_a_copy() -> None:
    a = bundled_config("META-LLAMA/llama-3.2-1b")
    assert a["hidden_size"] == 2048 and a["tie_word_embeddings"] is True
    a["hidden_size"] = 1
    assert bundled_config("meta-llama/Llama-3.2-1B")["hidden_size"] == 2048


def test_unknown_id_names_close_ids() -> None:
    with pytest.raises(KeyError, match=r"did you mean.*meta-llama/Llama-3\.2-1B"):
        bundled_config("meta-llama/Llama-3.2-1")


def test_instruct_variants_share_the_base_architecture() -> None:
    base, inst = (
        bundled_config("mistralai/Mistral-7B-v0.3"),
        bundled_config("mistralai/Mistral-7B-Instruct-v0.3"),
    )
    assert base == inst
    llama, llama_inst = (
        bundled_config("meta-llama/Llama-3.1-8B"),
        bundled_config("meta-llama/Llama-3.1-8B-Instruct"),
    )
    differ = {k for k in llama | llama_inst if llama.get(k) != llama_inst.get(k)}
    assert differ == {"eos_token_id", "transformers_version"}
    assert llama_inst["eos_token_id"] == [128001, 128008, 128009]


def test_config_dir_writes_config_json_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LEMBENCH_CACHE_DIR", str(tmp_path))
    folder = config_dir("qwen/qwen3-8b")
    assert folder.parent == tmp_path / "dummy" / "configs"
    assert folder.name.startswith("Qwen--Qwen3-8B-")
    written = json.loads((folder / "config.json").read_text())
    assert written == bundled_config("Qwen/Qwen3-8B")
    mtime = (folder / "config.json").stat().st_mtime_ns
    assert config_dir("Qwen/Qwen3-8B") == folder
    assert (folder / "config.json").stat().st_mtime_ns == mtime
    assert not list(folder.glob("*.tmp"))


def test_vocab_ids_leave_out_bos_eos_pad() -> None:
    ids = dummy_vocab_token_ids(bundled_config("meta-llama/Llama-3.1-8B-Instruct"))
    assert len(ids) == 128256 - 4 and ids[0] == 0
    assert not {128000, 128001, 128008, 128009} & set(ids)
    yi = dummy_vocab_token_ids(bundled_config("01-ai/Yi-1.5-9B"))
    assert yi[:2] == [3, 4] and len(yi) == 64000 - 3  # pad 0, bos 1, eos 2


def test_model_config_for_each_ref_kind(tmp_path) -> None:
    raw, source = model_config({"kind": "hf", "ref": "meta-llama/Llama-3.2-3B"})
    assert raw["num_hidden_layers"] == 28 and "vendored" in source
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 10}))
    raw, source = model_config({"kind": "path", "ref": str(tmp_path)})
    assert raw["vocab_size"] == 10 and source.startswith("local file")
    with pytest.raises(ValueError, match=r"config\.json"):
        model_config({"kind": "path", "ref": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match="not a gguf model"):
        model_config({"kind": "gguf", "ref": "/x.gguf"})
    with pytest.raises(KeyError):
        model_config({"kind": "hf", "ref": "org/unknown"})


def test_import_is_light() -> None:
    code = (
        "import sys, harness.models.dummy_weights as d; d.bundled_model_ids(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("model_id", sorted(KNOWN_PARAMS))
def test_parameter_count_matches_the_real_model(model_id: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.AutoConfig.for_model(**bundled_config(model_id))
    with torch.device("meta"):  # shapes only: an 8B model costs no memory here
        model = transformers.AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(KNOWN_PARAMS[model_id], rel=0.01)
