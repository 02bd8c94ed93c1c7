"""Engine option blocks, traffic, batching, decoding and dummy weights in suites: one-line errors
that name the engine, the key and what is allowed; blocks of other backends do not leak into ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.contract.groups import load_group_id
from lembench.errors import UserError
from lembench.suite import load_suite

HEAD = "schema_version: 3\nname: t\n"


def exp(fields: str, extra: str = "") -> str:
    return HEAD + f"experiment: {{model: smollm2-135m, {fields}}}\n" + extra


CASES = [
    pytest.param(
        exp("backend: vllm, vllm: {kv_cache_dtyp: fp8}"),
        "s.yaml: experiment.vllm.kv_cache_dtyp: unknown key for the vllm backend; did you mean "
        "'kv_cache_dtype'? (allowed: cpu_offload_gb, enable_chunked_prefill, enable_prefix_caching,"
        " enforce_eager, gpu_memory_utilization, kv_cache_dtype, max_model_len, "
        "max_num_batched_tokens, max_num_seqs, pipeline_parallel_size, quantization, "
        "speculative_config, swap_space, tensor_parallel_size)",
        id="vllm unknown key",
    ),
    pytest.param(
        exp("backend: vllm, vllm: {kv_cache_dtype: fp9}"),
        "s.yaml: experiment.vllm.kv_cache_dtype: 'fp9' is not allowed; did you mean 'fp8'? "
        "allowed: auto, fp8, fp8_e4m3, fp8_e5m2",
        id="vllm enum",
    ),
    pytest.param(
        exp("backend: tensorrt-llm, tensorrt: {quantization: int4}"),
        "s.yaml: experiment.tensorrt.quantization: 'int4' is not allowed; did you mean 'int4_wo'? "
        "allowed: fp8, int8_sq, "
        "int4_awq, int8_wo, int4_wo, null",
        id="tensorrt enum",
    ),
    pytest.param(
        exp("backend: llamacpp, llamacpp: {n_gpu_layer: 1}"),
        (
            "s.yaml: experiment.llamacpp.n_gpu_layer: unknown key for the llamacpp backend; did "
            "you mean 'n_gpu_layers'?",
        ),
        id="llamacpp unknown key",
    ),
    pytest.param(
        exp("backend: llamacpp, llamacpp: {batching: parallel}"),
        "s.yaml: experiment.llamacpp.batching: 'parallel' is not allowed; allowed: native, "
        "sequential",
        id="llamacpp enum",
    ),
    pytest.param(
        exp("backend: openai, openai: {model: x}"),
        "s.yaml: experiment.openai.base_url: required key missing",
        id="openai base_url",
    ),
    pytest.param(
        exp("backend: openai, openai: {base_url: 'localhost:8000'}"),
        ("s.yaml: experiment.openai.base_url: ", "'localhost:8000'"),
        id="openai url form",
    ),
    pytest.param(
        exp("pytorch: {quantization: int8}"),
        "s.yaml: experiment.pytorch.quantization: 'int8' is not allowed; did you mean 'bnb_int8'? "
        "allowed: bnb_int8, "
        "bnb_nf4, bnb_fp4, null",
        id="pytorch quantization enum",
    ),
    pytest.param(
        exp("vllm: {enforce_eager: true}"),
        "s.yaml: experiment.vllm: options for the vllm backend, but no experiment uses it "
        "(backends here: pytorch)",
        id="block for an unused backend",
    ),
    pytest.param(
        exp("traffic: {pattern: poisson, qps: 2}"),
        "s.yaml: experiment.traffic: the pytorch backend does not serve traffic (backends that do:"
        " lmstudio, ollama, openai, sglang, tensorrt-llm, vllm)",
        id="traffic on a static backend",
    ),
    pytest.param(
        exp("backend: vllm, traffic: {pattern: poisson}"),
        "s.yaml: experiment.traffic.qps: required key missing",
        id="poisson needs qps",
    ),
    pytest.param(
        exp("backend: vllm, traffic: {pattern: concurrency, qps: 2}"),
        "s.yaml: experiment.traffic.concurrency: required key missing",
        id="concurrency needs concurrency",
    ),
    pytest.param(
        exp("backend: vllm, traffic: {pattern: bursty, qps: 2}"),
        "s.yaml: experiment.traffic.pattern: 'bursty' is not allowed; allowed: poisson, constant,"
        " concurrency",
        id="traffic pattern",
    ),
    pytest.param(
        exp("batching: {strategy: dynamic}"),
        "s.yaml: experiment.batching.max_tokens: required key missing",
        id="dynamic needs max_tokens",
    ),
    pytest.param(
        exp("batching: {strategy: sorted}"),
        "s.yaml: experiment.batching.strategy: 'sorted' is not allowed; did you mean "
        "'sorted_static'? allowed: static, "
        "sorted_static, dynamic, sorted_dynamic",
        id="batching strategy",
    ),
    pytest.param(
        exp("decoding: {preset: greedy}"),
        "s.yaml: experiment.decoding.preset: 'greedy' is not allowed; allowed: deterministic, "
        "standard, creative, factual",
        id="decoding preset",
    ),
    pytest.param(
        exp("decoding: {top_p: 0}"),
        "s.yaml: experiment.decoding.top_p: must be > 0 (got 0)",
        id="decoding top_p",
    ),
    pytest.param(
        exp("backend: llamacpp, weights: dummy"),
        "s.yaml: experiment.weights: the llamacpp backend cannot build dummy weights (backends "
        "that can: pytorch, sglang, tensorrt-llm, vllm)",
        id="dummy on llamacpp",
    ),
    pytest.param(
        HEAD + "experiment: {model: {hf: meta-llama/Llama-3.1-8b}, weights: dummy}\n",
        None,
        id="dummy id case-insensitive",
    ),
    pytest.param(
        HEAD + "experiment: {model: {hf: acme/Nonexistent-7B}, weights: dummy}\n",
        (
            "s.yaml: experiment.model: no bundled config for 'acme/Nonexistent-7B' to build dummy "
            "weights from",
            "meta-llama/Llama-3.1-8B",
        ),
        id="dummy unknown architecture",
    ),
]


CASES += [
    pytest.param(
        "schema_version: 2\nname: t\n"
        "experiment: {model: smollm2-135m, decoding: {preset: standard}}\n",
        "s.yaml: experiment.decoding: decoding needs schema_version: 3 (this suite says 2); set "
        "schema_version: 3",
        id="v3 key in a v2 suite",
    ),
    pytest.param(
        "schema_version: 2\nname: t\nexperiment: {model: smollm2-135m}\n"
        "sweep: {pytorch.quantization: [null, bnb_int8]}\n",
        "s.yaml: sweep.pytorch.quantization: pytorch.quantization needs schema_version: 3 (this "
        "suite says 2); set schema_version: 3",
        id="v3 pytorch key swept in a v2 suite",
    ),
    pytest.param(
        "schema_version: 3\nname: t\n"
        "experiment: {model: smollm2-135m, backend: openai, openai: {base_url: 'http://127.0.0.1:1/v1'},"
        " traffic: {pattern: concurrency, concurrency: 2, slo: {tpot_s: 0.05}}}\n",
        "s.yaml: experiment.traffic.slo: traffic.slo needs schema_version: 4 (this suite says 3); "
        "set schema_version: 4",
        id="v4 goodput limits in a v3 suite",
    ),
    pytest.param(
        "schema_version: 4\nname: t\n"
        "experiment: {model: smollm2-135m, backend: openai, openai: {base_url: 'http://127.0.0.1:1/v1'},"
        " traffic: {pattern: concurrency, concurrency: 2, slo: {tpot_s: 0}}}\n",
        ("s.yaml: experiment.traffic.slo.tpot_s",),
        id="goodput limit must be positive",
    ),
    pytest.param(
        "schema_version: 4\nname: t\n"
        "experiment: {model: smollm2-135m, backend: openai, openai: {base_url: 'http://127.0.0.1:1/v1'},"
        " traffic: {pattern: concurrency, concurrency: 2, slo: {tpot_s: 0.05, ttft_s: 1}}}\n",
        None,
        id="goodput limits in a v4 suite",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_engine_option_messages(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    expected: str | tuple[str, ...] | None,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(text)
    if expected is None:
        load_suite("s.yaml")
        return
    with pytest.raises(UserError) as info:
        load_suite("s.yaml")
    message = str(info.value)
    assert "\n" not in message
    if isinstance(expected, str):
        assert message == expected
    else:
        for part in expected:
            assert part in message, message


def test_sweep_over_backends_keeps_each_backends_own_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    both = exp(
        "pytorch: {threads: 2}, llamacpp: {n_threads: 2}", "sweep: {backend: [pytorch, llamacpp]}\n"
    )
    (tmp_path / "s.yaml").write_text(both)
    suite = load_suite("s.yaml")
    by_backend = {e.config["backend"]: e for e in suite.experiments}
    assert by_backend["pytorch"].config["pytorch"]["threads"] == 2
    assert "llamacpp" not in by_backend["pytorch"].config
    assert by_backend["llamacpp"].config["llamacpp"] == {"n_threads": 2}
    assert "pytorch" not in by_backend["llamacpp"].config

    # The pytorch experiment's id does not depend on the llamacpp block written beside it.
    (tmp_path / "s.yaml").write_text(exp("backend: pytorch, pytorch: {threads: 2}"))
    alone = load_suite("s.yaml").experiments[0]
    assert alone.experiment_id == by_backend["pytorch"].experiment_id


def test_engine_options_change_the_load_group_and_workload_shaping_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = exp(
        "backend: llamacpp",
        "sweep:\n  llamacpp.n_threads: [1, 2]\n  decoding.preset: [deterministic, standard]\n"
        "  batching.strategy: [static, sorted_static]\n",
    )
    (tmp_path / "s.yaml").write_text(text)
    suite = load_suite("s.yaml")
    assert len(suite.experiments) == 8
    groups = {load_group_id(e.config) for e in suite.experiments}
    assert len(groups) == 2  # one per n_threads: decoding and batching share a model load
    assert len({e.experiment_id for e in suite.experiments}) == 8


def test_new_keys_have_no_schema_default_so_old_ids_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weights/decoding/batching/traffic and engine blocks are absent unless written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(exp("batch_size: 2"))
    config = load_suite("s.yaml").experiments[0].config
    for key in (
        "weights",
        "decoding",
        "batching",
        "traffic",
        "llamacpp",
        "openai",
        "vllm",
        "tensorrt",
    ):
        assert key not in config
    assert set(config["pytorch"]) == {"threads", "attn_implementation"}
