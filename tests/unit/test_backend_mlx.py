"""The mlx backend's pure parts (option mapping, sampler and processor arguments) and, where mlx
is installed, its parameter count on a tiny random mlx-lm model (no weights file, no model)."""

from __future__ import annotations

import sys

import pytest

from harness.backends.base import BackendUnavailable, Sampling
from harness.backends.mlxlm import MlxBackend
from harness.backends.mlxlm_options import (
    THREADS_NOTE,
    engine_args,
    processor_args,
    sampler_args,
)
from harness.contract import registry


def test_registered_under_its_name_and_aliases() -> None:
    assert registry.canonical("mlx-lm") == "mlx" and registry.canonical("mlx_lm") == "mlx"
    assert registry.describe("mlx").block == "mlx"


def test_device_precision_and_quantisation_mapping() -> None:
    args = engine_args({"precision": "bf16", "mlx": {"quantize": {"bits": 4}}}, gpu_available=False)
    assert (args.device, args.dtype, args.batching) == ("cpu", "bfloat16", "native")
    assert (args.quantize_bits, args.quantize_group_size) == (4, 64)
    assert engine_args({"device": "auto"}, gpu_available=True).device == "gpu"
    assert engine_args({"device": "cpu"}, gpu_available=True).device == "cpu"
    with pytest.raises(ValueError, match="no GPU"):
        engine_args({"device": "cuda:0"}, gpu_available=False)


def test_threads_are_recorded_as_not_applied() -> None:
    args = engine_args({"threads": 2}, gpu_available=False)
    assert args.threads_requested == 2 and args.to_dict()["threads_note"] == THREADS_NOTE
    assert "threads_note" not in engine_args({}, gpu_available=False).to_dict()
    assert engine_args({"mlx": {"threads": 3}}, gpu_available=False).threads_requested == 3


def test_sampler_and_processor_arguments() -> None:
    assert sampler_args(Sampling()) == {"temp": 0.0}
    sampled = Sampling(do_sample=True, temperature=0.7, top_p=0.9, top_k=40, min_p=0.05)
    assert sampler_args(sampled) == {"temp": 0.7, "top_p": 0.9, "min_p": 0.05, "top_k": 40}
    assert sampler_args(Sampling(do_sample=True, temperature=0.7))["top_p"] == 0.0  # off
    exact = processor_args(Sampling(), [2, 7], exact=True)
    assert exact == {"logit_bias": {2: float("-inf"), 7: float("-inf")}}
    assert processor_args(Sampling(), [2], exact=False) == {}
    pen = processor_args(Sampling(do_sample=True, repetition_penalty=1.2), [2], exact=False)
    assert pen == {"repetition_penalty": 1.2, "repetition_context_size": 20}


def test_missing_mlx_is_backend_unavailable(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlx", None)
    monkeypatch.setitem(sys.modules, "mlx.core", None)
    backend = MlxBackend({"kind": "alias", "ref": "smollm2-135m"}, {"backend": "mlx"})
    with pytest.raises(BackendUnavailable, match=r"lembench\[mlx\]"):
        backend.load()


def test_quantised_layers_count_at_their_unpacked_size() -> None:
    pytest.importorskip("mlx_lm")
    import mlx.nn as nn
    from mlx_lm.models.llama import Model, ModelArgs

    from harness.backends.mlxlm import logical_params

    args = ModelArgs(
        model_type="llama", hidden_size=64, num_hidden_layers=2, intermediate_size=128,
        num_attention_heads=4, rms_norm_eps=1e-5, vocab_size=256, num_key_value_heads=2,
        tie_word_embeddings=True,
    )  # fmt: skip
    model = Model(args)
    total, embed = logical_params(model)
    assert embed == 256 * 64
    # embedding + per layer (q, k, v, o, gate, up, down, two norms) + final norm
    per_layer = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64
    assert total == 256 * 64 + 2 * per_layer + 64
    nn.quantize(model, group_size=32, bits=4)
    assert logical_params(model) == (total, embed)  # packed uint32 weights counted unpacked
