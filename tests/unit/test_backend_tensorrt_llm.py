"""The tensorrt-llm backend against a fake of TensorRT-LLM 1.0's LLM API (tests/fakes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.backends import aio
from harness.backends.base import (
    GREEDY,
    BackendOOM,
    BackendUnavailable,
    ModelLoadError,
    Prompt,
    Sampling,
)
from harness.backends.tensorrt_llm import (
    QUANT_ALGOS,
    OptionError,
    TensorRTLLMBackend,
    engine_cache_key,
    engine_kwargs,
    sampling_kwargs,
)

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "tensorrt_llm_fake"
TINY = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": True,
}


def _drop_fake() -> None:
    for name in [m for m in sys.modules if m == "tensorrt_llm" or m.startswith("tensorrt_llm.")]:
        del sys.modules[name]


@pytest.fixture
def trt(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The fake library on sys.path for one test; its instrumentation module is returned."""
    _drop_fake()
    monkeypatch.syspath_prepend(str(FAKE))
    from tensorrt_llm import _state

    _state.reset()
    yield _state
    _drop_fake()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A local checkpoint folder: config.json plus a real (tiny, word-level) tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY))
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, 64)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(folder)
    return folder


def _config(**tensorrt: Any) -> dict[str, Any]:
    return {"backend": "tensorrt-llm", "precision": "bf16", "tensorrt": tensorrt}


def _backend(folder: Path, config: dict[str, Any]) -> TensorRTLLMBackend:
    ref = {"kind": "path", "ref": str(folder), "revision": None, "tokenizer": None}
    return TensorRTLLMBackend(ref, config)


# -- option mapping (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "key", "expected"),
    [
        ({}, "llm", {"dtype": "bfloat16"}),
        ({"tp_size": 2}, "llm", {"dtype": "bfloat16", "tensor_parallel_size": 2}),
        ({"pp_size": 2}, "llm", {"dtype": "bfloat16", "pipeline_parallel_size": 2}),
        ({"max_batch_size": 8}, "build_config", {"max_batch_size": 8}),
        ({"max_input_len": 512}, "build_config", {"max_input_len": 512}),
        ({"max_seq_len": 1024}, "build_config", {"max_seq_len": 1024}),
        ({"max_num_tokens": 4096}, "build_config", {"max_num_tokens": 4096}),
        ({}, "build_config", None),
        ({"quantization": "fp8"}, "quant_config", {"quant_algo": "FP8"}),
        ({"kv_cache_dtype": "int8"}, "quant_config", {"kv_cache_quant_algo": "INT8"}),
        ({"kv_cache_dtype": "auto"}, "quant_config", None),
        (
            {"kv_cache_free_gpu_memory_fraction": 0.5},
            "kv_cache_config",
            {"free_gpu_memory_fraction": 0.5},
        ),
        ({"enable_block_reuse": False}, "kv_cache_config", {"enable_block_reuse": False}),
        ({"runtime": "tensorrt"}, "runtime", "tensorrt"),
        ({"engine_cache_dir": "/x"}, "build_config", None),
    ],
)
def test_engine_kwargs_tensorrt_flow(options: dict, key: str, expected: Any) -> None:
    assert engine_kwargs(_config(**options))[key] == expected


@pytest.mark.parametrize("limit", ["max_batch_size", "max_input_len", "max_seq_len"])
def test_engine_kwargs_pytorch_flow_limits_are_llm_arguments(limit: str) -> None:
    spec = engine_kwargs(_config(runtime="pytorch", **{limit: 64}))
    assert spec["llm"][limit] == 64
    assert spec["build_config"] is None and spec["quant_config"] is None


def test_engine_kwargs_pytorch_kv_cache_dtype() -> None:
    spec = engine_kwargs(_config(runtime="pytorch", kv_cache_dtype="fp8"))
    assert spec["kv_cache_config"] == {"dtype": "fp8"}


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"quantization": "int4_awq"}, "runtime: tensorrt"),
        ({"engine_cache_dir": "/tmp/engines"}, "builds no engine"),
        ({"kv_cache_dtype": "int8"}, "int8 KV cache"),
    ],
)
def test_engine_kwargs_pytorch_flow_rejects_engine_only_options(options: dict, needle: str) -> None:
    with pytest.raises(OptionError, match=needle):
        engine_kwargs(_config(runtime="pytorch", **options))


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", "float32"), ("fp16", "float16")])
def test_precision_maps_to_dtype(precision: str, dtype: str) -> None:
    assert engine_kwargs({"precision": precision})["llm"]["dtype"] == dtype


def test_dummy_weights_use_load_format_dummy() -> None:
    assert engine_kwargs({**_config(), "weights": "dummy"})["llm"]["load_format"] == "dummy"
    assert "load_format" not in engine_kwargs(_config())["llm"]


def test_every_quantization_name_is_a_quant_algo_member(trt: Any) -> None:
    from tensorrt_llm.llmapi import QuantAlgo

    for name, member in QUANT_ALGOS.items():
        spec = engine_kwargs(_config(quantization=name))
        assert spec["quant_config"]["quant_algo"] == member
        assert getattr(QuantAlgo, member).value == member


def test_engine_cache_key_changes_with_build_options_only() -> None:
    source = {"kind": "hf", "ref": "a/b", "revision": None, "tokenizer": None, "weights": "real"}
    base = engine_cache_key(source, engine_kwargs(_config()), "1.0.0")
    assert base == engine_cache_key(source, engine_kwargs(_config()), "1.0.0")
    assert base != engine_cache_key(source, engine_kwargs(_config(max_batch_size=4)), "1.0.0")
    assert base != engine_cache_key(source, engine_kwargs(_config()), "1.0.1")
    kv = engine_kwargs(_config(kv_cache_free_gpu_memory_fraction=0.3))
    assert base == engine_cache_key(source, kv, "1.0.0")  # runtime setting, same engine


# -- sampling (pure) -----------------------------------------------------------------------


def test_greedy_is_top_k_1() -> None:
    assert sampling_kwargs(16, False, GREEDY) == {"max_tokens": 16, "top_k": 1}


def test_exact_ignores_eos_and_sets_min_tokens() -> None:
    kwargs = sampling_kwargs(16, True, GREEDY)
    assert kwargs["ignore_eos"] is True and kwargs["min_tokens"] == 16


def test_sampling_fields_and_defaults_off() -> None:
    s = Sampling(preset="standard", do_sample=True, temperature=0.7, top_p=0.9, top_k=50, seed=3)
    kwargs = sampling_kwargs(8, False, s, end_id=2)
    assert kwargs == {
        "max_tokens": 8,
        "end_id": 2,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 50,
        "seed": 3,
    }
    more = sampling_kwargs(8, False, Sampling(do_sample=True, min_p=0.1, repetition_penalty=1.2))
    assert more["min_p"] == 0.1 and more["repetition_penalty"] == 1.2


def test_sampling_kwargs_are_accepted_by_sampling_params(trt: Any) -> None:
    from tensorrt_llm.llmapi import SamplingParams

    s = Sampling(do_sample=True, temperature=1.0, top_p=0.95, top_k=0, min_p=0.05)
    params = SamplingParams(**sampling_kwargs(4, True, s, end_id=2))
    assert params.top_k == 0 and params.ignore_eos
    with pytest.raises(TypeError):
        SamplingParams(max_new_tokens=4)  # the fake rejects unknown names like the real one


# -- loading ---------------------------------------------------------------------------------


def test_load_tensorrt_flow_passes_build_and_quant_configs(trt: Any, model_dir: Path) -> None:
    backend = _backend(
        model_dir,
        _config(max_batch_size=8, max_seq_len=256, quantization="int8_sq", kv_cache_dtype="fp8",
                kv_cache_free_gpu_memory_fraction=0.4, enable_block_reuse=False, tp_size=1),
    )  # fmt: skip
    info = backend.load()
    ((flow, args),) = trt.constructed
    assert flow == "tensorrt"
    assert args.dtype == "bfloat16" and args.tensor_parallel_size == 1
    assert (args.build_config.max_batch_size, args.build_config.max_seq_len) == (8, 256)
    assert args.quant_config.quant_algo.value == "W8A8_SQ_PER_CHANNEL"
    assert args.quant_config.kv_cache_quant_algo.value == "FP8"
    assert args.kv_cache_config.free_gpu_memory_fraction == 0.4
    assert args.kv_cache_config.enable_block_reuse is False
    assert args.tokenizer == str(model_dir)
    json.dumps(info.model)  # JSON-safe provenance
    assert info.model["engine_args"]["build_config"] == {"max_batch_size": 8, "max_seq_len": 256}
    assert info.model["engine_cache"]["status"] == "disabled"
    assert info.versions["tensorrt_llm"] == "1.0.0"
    assert info.dtype == "bfloat16"
    backend.unload()


def test_load_pytorch_flow(trt: Any, model_dir: Path) -> None:
    backend = _backend(model_dir, _config(runtime="pytorch", max_batch_size=4, max_num_tokens=512))
    backend.load()
    ((flow, args),) = trt.constructed
    assert flow == "pytorch"
    assert (args.max_batch_size, args.max_num_tokens) == (4, 512)
    assert not hasattr(args, "build_config")
    backend.unload()


def test_fake_rejects_what_the_real_args_reject(trt: Any, model_dir: Path) -> None:
    from pydantic import ValidationError
    from tensorrt_llm import LLM
    from tensorrt_llm.llmapi import BuildConfig

    with pytest.raises(ValidationError):
        LLM(model=str(model_dir), build_config=BuildConfig())  # TorchLlmArgs has no build_config
    with pytest.raises(ValidationError):
        LLM(model=str(model_dir), max_batch=3)


def test_engine_cache_builds_once_then_reuses(trt: Any, model_dir: Path, tmp_path: Path) -> None:
    config = _config(engine_cache_dir=str(tmp_path / "engines"), max_batch_size=4)
    first = _backend(model_dir, config)
    built = first.load().model["engine_cache"]
    first.unload()
    assert built["status"] == "built" and built["build_time_s"] >= 0
    target = Path(built["dir"]) / built["key"]
    assert (target / "config.json").is_file() and trt.saved
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no partials

    second = _backend(model_dir, config)
    reused = second.load().model["engine_cache"]
    assert reused["status"] == "reused" and reused["key"] == built["key"]
    _, args = trt.constructed[-1]
    assert Path(args.model) == target and args.build_config is None
    assert len(trt.saved) == 1  # not rebuilt
    second.unload()

    other = _backend(model_dir, _config(engine_cache_dir=config["tensorrt"]["engine_cache_dir"]))
    assert other.load().model["engine_cache"]["status"] == "built"  # other build options
    other.unload()


# -- generation ------------------------------------------------------------------------------


def test_static_batch_streams_exact_tokens_with_timestamps(trt: Any, model_dir: Path) -> None:
    backend = _backend(model_dir, _config())
    backend.load()
    prompts = [Prompt([5, 6, 7]), Prompt([9])]
    gens = backend.generate(prompts, 5, exact=True)
    assert [g.tokens_in for g in gens] == [3, 1]
    for g in gens:
        assert g.tokens_out == 5 and len(g.token_times) == 5
        assert g.t_start <= g.token_times[0]
        assert g.token_times == sorted(g.token_times)
        assert g.text  # detokenized by the engine
    assert gens[0].t_start == gens[1].t_start  # one batch, one submission time
    assert all(p.ignore_eos and p.min_tokens == 5 and p.top_k == 1 for p in trt.requests)
    backend.unload()


def test_not_exact_stops_at_eos_counting_what_the_engine_returned(
    trt: Any, model_dir: Path
) -> None:
    backend = _backend(model_dir, _config())
    backend.load()
    trt.eos_after = 2
    (gen,) = backend.generate([Prompt([5])], 8, exact=False)
    assert gen.tokens_out == 3 and len(gen.token_times) == 3
    backend.unload()


def test_agenerate_serves_one_request_on_the_shared_loop(trt: Any, model_dir: Path) -> None:
    backend = _backend(model_dir, _config(runtime="pytorch"))
    backend.load()
    s = Sampling(do_sample=True, temperature=0.5, top_p=0.9, top_k=10, seed=7)
    gen = aio.run(backend.agenerate(Prompt([3, 4]), 4, True, s))
    assert gen.tokens_out == 4 and gen.t_start <= gen.token_times[0]
    (params,) = trt.requests
    assert (params.temperature, params.top_p, params.top_k, params.seed) == (0.5, 0.9, 10, 7)
    backend.unload()


def test_encode_and_vocab_from_the_tokenizer(trt: Any, model_dir: Path) -> None:
    backend = _backend(model_dir, _config())
    backend.load()
    assert backend.encode("w3 w4") == [3, 4]
    vocab = backend.vocab_token_ids()
    assert 0 not in vocab and 2 not in vocab and 3 in vocab
    backend.unload()


# -- dummy weights ---------------------------------------------------------------------------


def test_dummy_weights_from_bundled_config(
    trt: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from harness.models.dummy_weights import bundled_config, bundled_model_ids

    monkeypatch.setenv("LEMBENCH_CACHE_DIR", str(tmp_path))
    model_id = bundled_model_ids()[0]
    ref = {"kind": "hf", "ref": model_id, "revision": None, "tokenizer": None}
    backend = TensorRTLLMBackend(ref, {**_config(), "weights": "dummy"})
    info = backend.load()
    ((_, args),) = trt.constructed
    assert args.load_format == "dummy" and args.skip_tokenizer_init
    assert json.loads((Path(args.model) / "config.json").read_text()) == bundled_config(model_id)
    assert info.model["weights"] == "dummy"
    gen = backend.generate([Prompt([10, 11])], 3, exact=True)[0]
    assert gen.tokens_out == 3 and gen.text is None
    eos = bundled_config(model_id)["eos_token_id"]
    assert trt.requests[0].end_id == (eos[0] if isinstance(eos, list) else eos)
    assert trt.requests[0].detokenize is False
    assert eos not in backend.vocab_token_ids()
    with pytest.raises(ModelLoadError, match=r"model\.tokenizer"):
        backend.encode("hello")
    flops = backend.flops_per_token(128)
    assert flops.per_token and flops.per_token > 0
    backend.unload()


def test_dummy_weights_unknown_model(trt: Any) -> None:
    ref = {"kind": "hf", "ref": "nobody/unknown-model", "revision": None, "tokenizer": None}
    with pytest.raises(ModelLoadError, match="bundled config"):
        TensorRTLLMBackend(ref, {**_config(), "weights": "dummy"}).load()


# -- errors ------------------------------------------------------------------------------------


def test_missing_library_is_backend_unavailable(model_dir: Path) -> None:
    _drop_fake()
    with pytest.raises(BackendUnavailable, match="tensorrt-llm image"):
        _backend(model_dir, _config()).load()


def test_oom_while_building_is_backend_oom(trt: Any, model_dir: Path) -> None:
    trt.fail_on_init = RuntimeError("[TensorRT-LLM][ERROR] CUDA runtime error: out of memory")
    with pytest.raises(BackendOOM):
        _backend(model_dir, _config()).load()


def test_oom_while_generating_is_backend_oom(trt: Any, model_dir: Path) -> None:
    backend = _backend(model_dir, _config())
    backend.load()
    trt.fail_on_generate = MemoryError("host allocation failed")
    with pytest.raises(BackendOOM):
        backend.generate([Prompt([1, 2])], 4, exact=True)
    backend.unload()


def test_build_errors_are_model_load_errors(trt: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="Hub is unreachable"):
        _backend(tmp_path / "missing", _config()).load()
    trt.fail_on_init = ValueError("Unsupported architecture FooForCausalLM")
    with pytest.raises(ModelLoadError, match="FooForCausalLM"):
        _backend(tmp_path, _config()).load()


def test_option_errors_and_gguf_are_model_load_errors(trt: Any, model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="runtime: tensorrt"):
        _backend(model_dir, _config(runtime="pytorch", quantization="fp8")).load()
    gguf = {"kind": "gguf", "ref": "/m.gguf", "revision": None, "tokenizer": None}
    with pytest.raises(ModelLoadError, match="GGUF"):
        TensorRTLLMBackend(gguf, _config()).load()
