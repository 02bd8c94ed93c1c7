"""The mlx backend (mlx-lm, ``mlx[cpu]`` on Linux) on the real SmolLM2-135M, CPU.

The GGUF alias is dequantised once into lembench's GGUF cache (transformers) and mlx-lm loads
that folder in ~3 s; 8 tokens for 2 prompts take a few seconds on two cores.
"""

from __future__ import annotations

import pytest

pytest.importorskip("mlx_lm")
pytest.importorskip("transformers")

from harness.backends.base import ModelLoadError, Sampling
from harness.backends.mlxlm import MlxBackend
from harness.models.refs import ModelRefError, resolve_ref
from harness.workloads.synthetic import make_prompts

pytestmark = pytest.mark.integration
SMOLLM2_PARAMS = 134_515_008  # what llama.cpp's llama_model_n_params says for the same GGUF
NEW = 8


def config(batch_size: int = 2, **options) -> dict:
    return {
        "backend": "mlx",
        "precision": "fp32",
        "device": "cpu",
        "batch_size": batch_size,
        "workload": {"kind": "synthetic", "input_tokens": 16, "output_tokens": NEW},
        "mlx": options,
    }


@pytest.fixture(scope="module")
def resolved() -> dict:
    try:
        return resolve_ref("smollm2-135m")
    except ModelRefError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def loaded(resolved):
    backend = MlxBackend(resolved, config(threads=2))
    info = backend.load()
    yield backend, info
    backend.unload()


@pytest.fixture(scope="module")
def prompts(loaded):
    backend, _ = loaded
    return make_prompts(backend.vocab_token_ids(), num_prompts=2, input_tokens=16, seed=0)


def test_load_records_provenance_and_the_unapplied_threads(loaded) -> None:
    _, info = loaded
    assert info.device == "cpu" and info.dtype == "float32"
    assert info.model["architecture"] == "llama" and info.model["params"] == SMOLLM2_PARAMS
    assert info.model["gguf_sha256"] and info.model["quantization"] is None
    assert info.model["eos_token_ids"] == [2]
    args = info.model["engine_args"]
    assert args["batching_used"] == "native" and args["threads_requested"] == 2
    assert "no CPU thread setting" in args["threads_note"]
    backend, _ = loaded
    assert (backend.threads.count, backend.threads.source) == (1, "engine_fixed")
    assert info.versions["mlx-lm"] and info.versions["mlx"]


def test_exact_lengths_and_native_equals_sequential(loaded, resolved, prompts) -> None:
    backend, _ = loaded
    native = backend.generate(prompts, NEW, exact=True)
    assert [g.tokens_out for g in native] == [NEW, NEW]
    for g in native:
        assert len(g.token_times) == NEW and g.t_start < g.token_times[0]
        assert g.token_times == sorted(g.token_times)
    sequential = MlxBackend(resolved, config(batching="sequential"))
    sequential.load()
    try:
        same = sequential.generate(prompts, NEW, exact=True)
    finally:
        sequential.unload()
    # Greedy decoding of the same weights: the batched and the one-by-one path agree.
    assert [g.text for g in same] == [g.text for g in native]
    assert same[0].t_start < same[1].t_start  # one after another


def test_free_length_stops_at_most_at_the_limit(loaded, prompts) -> None:
    backend, _ = loaded
    out = backend.generate(prompts, NEW, exact=False)
    assert all(1 <= g.tokens_out <= NEW and len(g.token_times) == g.tokens_out for g in out)


def test_sampling_is_seeded(loaded, prompts) -> None:
    backend, _ = loaded
    s = Sampling(preset="x", do_sample=True, temperature=0.9, top_k=50, seed=7)
    a = backend.generate(prompts[:1], NEW, exact=True, sampling=s)
    b = backend.generate(prompts[:1], NEW, exact=True, sampling=s)
    assert a[0].text == b[0].text


def test_flops_match_the_architecture(loaded) -> None:
    backend, _ = loaded
    f = backend.flops_per_token(24)
    assert f.method == "analytical" and f.params == SMOLLM2_PARAMS
    # 2 x params (tied head counted as a matmul, embedding lookup not) + a small attention term.
    assert f.per_token == pytest.approx(2 * SMOLLM2_PARAMS, rel=0.01)


def test_in_memory_quantisation_counts_unpacked_parameters(resolved, prompts) -> None:
    backend = MlxBackend(resolved, config(quantize={"bits": 4, "group_size": 64}))
    info = backend.load()
    try:
        assert info.model["quantization"]["bits"] == 4 and "4-bit" in info.dtype
        assert info.model["params"] == SMOLLM2_PARAMS  # packed uint32 weights unpacked
        out = backend.generate(prompts, 4, exact=True)
        assert [g.tokens_out for g in out] == [4, 4]
    finally:
        backend.unload()


SUITE = """\
schema_version: 3
name: mlxcross
experiment:
  model: smollm2-135m
  precision: fp32
  device: cpu
  warmup: {runs: 1}
  workload: {kind: synthetic, num_prompts: 2, input_tokens: 16, output_tokens: 4,
             exact_output: true, seed: 3}
  llamacpp: {n_threads: 1}
measurement: {idle_baseline_s: 0}
sweep:
  backend: [llamacpp, mlx]
  batch_size: [2]
"""


def test_mlx_and_llamacpp_side_by_side_through_lembench_run(tmp_path) -> None:
    pytest.importorskip("llama_cpp")
    from tests.integration.test_quickstart import lembench, stored

    (tmp_path / "s.yaml").write_text(SUITE)
    proc = lembench("run", str(tmp_path / "s.yaml"), "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by = {r["config"]["backend"]: r for r in stored(tmp_path / "r", "mlxcross")}
    assert set(by) == {"llamacpp", "mlx"} and all(r["status"] == "ok" for r in by.values())
    for key in ("tokens_in", "tokens_out", "num_requests"):
        assert by["mlx"]["metrics"][key] == by["llamacpp"]["metrics"][key], key
    # One architecture, two engines: FLOPs per token agree (GGUF analytical vs mlx analytical).
    f_mlx, f_llama = (by[b]["flops"]["per_output_token"] for b in ("mlx", "llamacpp"))
    assert f_mlx == pytest.approx(f_llama, rel=0.01)


def test_an_mlx_quantised_folder_loads_as_stored(loaded, prompts, tmp_path) -> None:
    """A model folder quantised by mlx-lm's own converter (what mlx-community publishes) loads
    with its quantisation recorded; asking to quantise it again is refused."""
    from mlx_lm import convert

    _, info = loaded
    folder = tmp_path / "smollm2-4bit"
    convert(info.model["source"], mlx_path=str(folder), quantize=True, q_group_size=64, q_bits=4)
    ref = resolve_ref(str(folder))
    assert ref["kind"] == "path"
    quantised = MlxBackend(ref, config())
    qinfo = quantised.load()
    try:
        assert qinfo.model["quantization"]["bits"] == 4 and "4-bit affine g64" in qinfo.dtype
        assert qinfo.model["params"] == SMOLLM2_PARAMS
        out = quantised.generate(prompts, 4, exact=True)
        assert [g.tokens_out for g in out] == [4, 4]
    finally:
        quantised.unload()
    again = MlxBackend(ref, config(quantize={"bits": 4}))
    with pytest.raises(ModelLoadError, match="already quantised"):
        again.load()
