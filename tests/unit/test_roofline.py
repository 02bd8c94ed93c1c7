"""MFU/MBU against hand-computed values: stored weight bytes (GGUF Q4_K_M, AWQ, bnb), tensor
parallel devices and MoE active experts. Each case fails on the rule it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from harness.backends.base import FlopsEstimate
from harness.backends.llamacpp_options import _flops_inputs
from harness.hardware.gpu.scope import experiment_positions
from harness.hardware.parallel import devices_used
from harness.hardware.peaks import utilisation
from harness.models.weight_bytes import quant_width, quantised_bytes, stored_weight_bytes

H100 = "NVIDIA H100 80GB HBM3"


def _q4_k_m_gguf(path):
    """A tiny GGUF laid out like Q4_K_M: most matrices Q4_K (144 bytes per 256 weights), some
    Q6_K (210 bytes per 256, llama.cpp's choice for attn_v and half of ffn_down), norms F32."""
    import gguf
    from gguf import GGMLQuantizationType as T

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_embedding_length(256)
    w.add_head_count(4)
    w.add_tensor("token_embd.weight", np.zeros((8, 144), dtype=np.uint8), raw_dtype=T.Q4_K)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((256, 144), dtype=np.uint8), raw_dtype=T.Q4_K)
    w.add_tensor("blk.0.attn_v.weight", np.zeros((64, 210), dtype=np.uint8), raw_dtype=T.Q6_K)
    w.add_tensor("output_norm.weight", np.zeros(256, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    meta = {
        "general.architecture": "llama",
        "llama.block_count": "1",
        "llama.embedding_length": "256",
        "llama.attention.head_count": "4",
    }
    return meta


def test_q4_k_m_gguf_mbu_counts_stored_bytes(tmp_path) -> None:
    path = tmp_path / "m.gguf"
    meta = _q4_k_m_gguf(path)
    params = 8 * 256 + 256 * 256 + 64 * 256 + 256  # 86,272 weights
    info = _flops_inputs(path, meta, params)
    stored = 8 * 144 + 256 * 144 + 64 * 210 + 256 * 4  # 52,480 bytes: 4.87 bits per weight
    assert info["weight_bytes"]["per_step"] == stored
    assert "Q4_K" in info["weight_bytes"]["source"] and "Q6_K" in info["weight_bytes"]["source"]
    flops = FlopsEstimate(2.0 * params, "analytical", params, 64)
    wb = stored_weight_bytes({"weight_bytes": info["weight_bytes"]}, {"backend": "llamacpp"}, flops)
    u = utilisation(2.0 * params, 0, 1000, 2.0, params, "fp16", 1000, ["NVIDIA L4"], None, wb)
    assert u["mbu"] == pytest.approx(stored * 1000 / 2.0 / 300e9)
    # The old rule read fp16 parameters: 2 bytes each, 3.3x the stored bytes.
    old = params * 2 * 1000 / 2.0 / 300e9
    assert u["mbu"] == pytest.approx(old * stored / (2 * params))
    assert u["mbu"] < old / 3
    assert u["weight_bytes_source"].startswith("GGUF stored tensor bytes")


def test_tensor_parallel_two_gpus_peak_and_bytes_per_device() -> None:
    config = {"backend": "vllm", "precision": "bf16", "vllm": {"tensor_parallel_size": 2}}
    visible = [{"name": H100}, {"name": H100}, {"name": "NVIDIA L4"}]
    positions, _why = experiment_positions(config)
    assert positions == [0, 1]
    devices = devices_used("cuda", [visible[p] for p in positions])
    assert devices == [H100, H100]  # the old rule took the loaded device alone
    # 1e9 parameters bf16 (2e9 bytes, 1e9 per GPU), 2e9 FLOPs per token, 1000 prompt + 9000
    # output tokens over 10 s in 9000 decode steps.
    u = utilisation(2e9, 1000, 9000, 10.0, 10**9, "bf16", 9000, devices)
    assert u["devices"] == 2
    assert u["mfu"] == pytest.approx(2e9 * 10000 / 10.0 / (2 * 989.4e12))
    per_device_bytes = 2e9 / 2
    assert u["mbu"] == pytest.approx(per_device_bytes * 9000 / 10.0 / 3350e9)
    one = utilisation(2e9, 1000, 9000, 10.0, 10**9, "bf16", 9000, devices[:1])
    assert one["mfu"] == pytest.approx(2 * u["mfu"])  # what one device would have claimed


def test_pipeline_and_tensor_parallel_on_tensorrt_llm() -> None:
    config = {"backend": "tensorrt-llm", "tensorrt": {"tp_size": 2, "pp_size": 2}}
    positions, _why = experiment_positions(config)
    assert positions == [0, 1, 2, 3]
    scoped = [{"name": f"NVIDIA L4 {i}"} for i in positions]
    assert devices_used("cuda", scoped) == [g["name"] for g in scoped]
    assert devices_used("cpu", scoped) == []
    assert experiment_positions({"backend": "pytorch"})[0] == [0]


def test_awq_mbu_counts_four_bits_plus_scales() -> None:
    width, _note = quant_width("awq")
    assert width == pytest.approx(0.5 + 2.5 / 128)
    wb = quantised_bytes(10**9, 10**8, 2.0, "awq")
    assert wb is not None
    assert wb.per_step == pytest.approx(9e8 * (0.5 + 2.5 / 128) + 1e8 * 2)
    flops = FlopsEstimate(2e9, "analytical", 10**9, 64, unquantised_params=10**8)
    config = {"backend": "vllm", "precision": "fp16", "vllm": {"quantization": "awq"}}
    assert stored_weight_bytes({}, config, flops).per_step == pytest.approx(wb.per_step)
    u = utilisation(2e9, 0, 100, 1.0, 10**9, "fp16", 100, ["NVIDIA L4"], None, wb)
    assert u["mbu"] == pytest.approx(wb.per_step * 100 / 300e9)


def test_bnb_double_quant_width() -> None:
    plain, _ = quant_width("bnb_nf4")
    double, _ = quant_width("bnb_nf4", {"bnb_4bit_use_double_quant": True})
    assert plain == pytest.approx(0.5 + 4 / 64)
    assert double == pytest.approx(0.5 + (1 + 4 / 256) / 64)
    assert quant_width("no-such-method") is None


def test_moe_flops_count_active_experts_only() -> None:
    from harness.window.flops import estimate_from_config

    config = {
        "model_type": "mixtral",
        "vocab_size": 1000,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "tie_word_embeddings": False,
    }
    est = estimate_from_config(config, 10)
    # Per layer: attention 64x64 + 2 x 32x64 + 64x64 = 12,288; router 8x64 = 512; experts
    # 8 x (2 x 128 x 64 + 64 x 128) = 196,608 of which 2/8 are used = 49,152; norms 128.
    layer_active = 12288 + 512 + 49152 + 128
    n_matmul = 2 * layer_active + 64 + 1000 * 64  # + final norm + untied LM head
    attention = 2 * 2 * 10 * 4 * 16  # 2 x n_layers x s x heads x head_dim
    assert est.method == "analytical"
    assert est.per_token == pytest.approx(2 * n_matmul + attention)
    inactive = 2 * 196608 * 6 // 8
    assert est.active_params == est.params - inactive
    assert est.unquantised_params == 2 * 64000  # embedding + untied LM head
    assert "2 of 8 experts" in est.note


def test_a_server_said_to_run_a_gguf_gets_its_stored_bytes(tmp_path) -> None:
    from harness.models.weight_bytes import served_gguf_bytes

    path = tmp_path / "m.gguf"
    _q4_k_m_gguf(path)
    got = served_gguf_bytes({"kind": "gguf", "ref": str(path)})
    assert got is not None and got["per_step"] == 8 * 144 + 256 * 144 + 64 * 210 + 256 * 4
    assert got["source"].endswith("assumes the server runs m.gguf")
    assert served_gguf_bytes({"kind": "hf", "ref": "org/model"}) is None
    assert served_gguf_bytes({"kind": "gguf", "ref": str(tmp_path / "missing.gguf")}) is None


def test_moe_gguf_counts_used_experts_only() -> None:
    from harness.models.weight_bytes import gguf_tensor_bytes

    tensors = [
        ("blk.0.attn_q.weight", "Q4_K", 1000),
        ("blk.0.ffn_gate_exps.weight", "Q4_K", 8000),  # 8 experts
        ("blk.0.ffn_gate_shexp.weight", "Q4_K", 1000),  # shared expert: always read
    ]
    wb = gguf_tensor_bytes(tensors, 2, 8)
    assert wb.per_step == 1000 + 8000 * 2 / 8 + 1000
    assert "x 2/8" in wb.source


def test_bnb_4bit_packed_weights_count_as_their_original_shape() -> None:
    from types import SimpleNamespace

    from harness.window.flops import count_params

    class Packed:  # bitsandbytes Params4bit: uint8 storage, two weights per element
        def __init__(self, shape: tuple[int, int]) -> None:
            self.quant_state = SimpleNamespace(shape=shape)

        def numel(self) -> int:
            return self.quant_state.shape[0] * self.quant_state.shape[1] // 2

    class Plain:
        def numel(self) -> int:
            return 100

    model = SimpleNamespace(parameters=lambda: [Packed((64, 32)), Plain()])
    assert count_params(model) == 64 * 32 + 100


def test_pytorch_bnb_nf4_double_quant_bytes() -> None:
    config = {"backend": "pytorch", "precision": "fp16", "pytorch": {"quantization": "bnb_nf4"}}
    info = {
        "engine_args": {
            "weight_bytes_per_param": 0.5,  # the old rule: half a byte for every parameter
            "quantization_config": {"bnb_4bit_use_double_quant": True},
        }
    }
    flops = FlopsEstimate(2e9, "calflops", 10**9, 64, unquantised_params=10**8)
    wb = stored_weight_bytes(info, config, flops)
    assert wb.per_step == pytest.approx(9e8 * (0.5 + (1 + 4 / 256) / 64) + 1e8 * 2)
    assert wb.per_step > 0.5 * 10**9  # the embedding stays fp16, the absmax adds bytes


def test_unknown_quantisation_says_it_assumed_the_compute_width() -> None:
    flops = FlopsEstimate(2e9, "analytical", 10**9, 64, unquantised_params=10**8)
    config = {"backend": "vllm", "precision": "bf16", "vllm": {"quantization": "experts_int8"}}
    wb = stored_weight_bytes({}, config, flops)
    assert wb.per_step == 2e9 and "'experts_int8' has no storage entry" in wb.source
    marlin = {"backend": "vllm", "precision": "fp16", "vllm": {"quantization": "awq_marlin"}}
    assert stored_weight_bytes({}, marlin, flops).per_step == pytest.approx(
        9e8 * (0.5 + 2.5 / 128) + 1e8 * 2
    )
