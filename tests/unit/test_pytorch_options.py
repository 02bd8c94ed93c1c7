"""The pytorch backend's engine options, option by option, and the sampling mapping.

``engine_kwargs`` is checked against the real transformers objects it builds (BitsAndBytesConfig,
which does not import bitsandbytes). The backend itself is
exercised on a tiny local architecture with ``weights: dummy`` (milliseconds, no download)."""

from __future__ import annotations

import json
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from harness.backends.base import (  # noqa: E402 - after the importorskips
    GREEDY,
    BackendUnavailable,
    ModelLoadError,
    Prompt,
    Sampling,
)
from harness.backends.pytorch import PyTorchBackend, bitsandbytes_available  # noqa: E402
from harness.backends.pytorch_options import engine_kwargs, generation_kwargs  # noqa: E402


def cfg(precision: str = "bf16", **opts) -> dict:
    return {"precision": precision, "device": "auto", "pytorch": opts}


def test_no_options_means_engine_defaults() -> None:
    args = engine_kwargs(cfg("fp16"), "cuda")
    assert args.load == {"dtype": torch.float16}
    assert args.generation == {"disable_compile": True}
    assert args.compile_mode is None
    assert args.record == {"dtype": "float16", "generation": {"disable_compile": True}}
    json.dumps(args.record)


@pytest.mark.parametrize("precision,dtype", [("fp32", "float32"), ("bf16", "bfloat16")])
def test_precision_maps_to_dtype(precision: str, dtype: str) -> None:
    assert engine_kwargs(cfg(precision), "cpu").load["dtype"] is getattr(torch, dtype)


@pytest.mark.parametrize("attn", ["eager", "sdpa", "flex_attention", "flash_attention_2"])
def test_attn_implementation(attn: str) -> None:
    args = engine_kwargs(cfg(attn_implementation=attn), "cuda")
    assert args.load["attn_implementation"] == attn == args.record["attn_implementation"]


def test_flash_attention_2_refused_on_cpu() -> None:
    with pytest.raises(BackendUnavailable, match="flash_attention_2 needs a CUDA GPU"):
        engine_kwargs(cfg(attn_implementation="flash_attention_2"), "cpu")


def test_bnb_int8_default_threshold_and_explicit() -> None:
    args = engine_kwargs(cfg(quantization="bnb_int8"), "cuda")
    q = args.load["quantization_config"]
    assert isinstance(q, transformers.BitsAndBytesConfig)
    assert q.load_in_8bit and not q.load_in_4bit and q.llm_int8_threshold == 6.0
    assert args.record["quantization"] == "bnb_int8"
    assert args.record["quantization_config"]["llm_int8_threshold"] == 6.0
    json.dumps(args.record)
    q = engine_kwargs(cfg(quantization="bnb_int8", llm_int8_threshold=0), "cuda").load[
        "quantization_config"
    ]
    assert q.llm_int8_threshold == 0.0 and isinstance(q.llm_int8_threshold, float)
    assert "bitsandbytes" not in sys.modules  # the mapping never imports bitsandbytes


@pytest.mark.parametrize("method,qtype", [("bnb_nf4", "nf4"), ("bnb_fp4", "fp4")])
def test_bnb_4bit(method: str, qtype: str) -> None:
    q = engine_kwargs(cfg("fp16", quantization=method), "cuda").load["quantization_config"]
    assert q.load_in_4bit and q.bnb_4bit_quant_type == qtype
    assert q.bnb_4bit_compute_dtype is torch.float16  # default: the experiment's precision
    assert q.bnb_4bit_use_double_quant is False
    args = engine_kwargs(
        cfg("fp16", quantization=method, double_quant=True, compute_dtype="bf16"), "cuda"
    )
    q = args.load["quantization_config"]
    assert q.bnb_4bit_use_double_quant is True and q.bnb_4bit_compute_dtype is torch.bfloat16
    assert args.record["quantization_config"]["bnb_4bit_compute_dtype"] == "bfloat16"


@pytest.mark.parametrize("method", ["bnb_int8", "bnb_nf4", "bnb_fp4"])
def test_bnb_refused_on_cpu(method: str) -> None:
    with pytest.raises(BackendUnavailable, match=f"{method} needs CUDA and bitsandbytes"):
        engine_kwargs(cfg(quantization=method), "cpu")


@pytest.mark.parametrize(
    "opts,match",
    [
        ({"llm_int8_threshold": 3.0}, "bnb_int8 only"),
        ({"quantization": "bnb_nf4", "llm_int8_threshold": 3.0}, "bnb_int8 only"),
        ({"double_quant": True}, "bnb_nf4 or bnb_fp4 only"),
        ({"quantization": "bnb_int8", "compute_dtype": "fp16"}, "bnb_nf4 or bnb_fp4 only"),
        ({"compile_mode": "max-autotune"}, "needs pytorch.compile: true"),
    ],
)
def test_inconsistent_options_are_refused(opts: dict, match: str) -> None:
    with pytest.raises(ModelLoadError, match=match):
        engine_kwargs(cfg(**opts), "cuda")


def test_bnb_on_gguf_refused() -> None:
    with pytest.raises(ModelLoadError, match="GGUF"):
        engine_kwargs(cfg(quantization="bnb_nf4"), "cuda", model_kind="alias")


@pytest.mark.parametrize("device_map", ["auto", "balanced", "balanced_low_0", "sequential"])
def test_device_map(device_map: str) -> None:
    args = engine_kwargs(cfg(device_map=device_map), "cuda")
    assert args.load["device_map"] == device_map == args.record["device_map"]
    with pytest.raises(BackendUnavailable, match="CUDA GPUs"):
        engine_kwargs(cfg(device_map=device_map), "cpu")


def test_compile_and_mode() -> None:
    assert engine_kwargs(cfg(compile=True), "cpu").compile_mode == "default"
    args = engine_kwargs(cfg(compile=True, compile_mode="reduce-overhead"), "cuda")
    assert args.compile_mode == "reduce-overhead"
    assert args.record["compile"] == {"mode": "reduce-overhead", "target": "model.forward"}
    assert engine_kwargs(cfg(compile=False), "cpu").compile_mode is None


@pytest.mark.parametrize("cache", ["static", "dynamic"])
def test_cache_implementation_reaches_generation_config(cache: str) -> None:
    args = engine_kwargs(cfg(cache_implementation=cache), "cpu")
    assert args.generation == {"cache_implementation": cache, "disable_compile": True}
    # the fields are real GenerationConfig fields (it validates cache_implementation)
    gen = transformers.GenerationConfig(**args.generation)
    assert gen.cache_implementation == cache and gen.disable_compile is True


def test_bitsandbytes_probe_does_not_import() -> None:
    assert bitsandbytes_available(lambda name: None) is False
    assert bitsandbytes_available(lambda name: object()) is True


# -- sampling ------------------------------------------------------------------------------


def test_greedy_generation_kwargs() -> None:
    kw = generation_kwargs(GREEDY, 5, True, [2], 0, {"disable_compile": True})
    assert kw == {
        "num_beams": 1,
        "max_new_tokens": 5,
        "min_new_tokens": 5,
        "eos_token_id": [2],
        "pad_token_id": 0,
        "do_sample": False,
        "disable_compile": True,
    }
    assert generation_kwargs(GREEDY, 5, False, [], 0)["min_new_tokens"] == 0


def test_sampling_generation_kwargs() -> None:
    s = Sampling(preset="x", do_sample=True, temperature=0.7, top_p=0.9, top_k=40, min_p=0.05,
                 repetition_penalty=1.1, seed=7)  # fmt: skip
    kw = generation_kwargs(s, 3, False, [2], 0)
    assert kw["do_sample"] is True and kw["temperature"] == 0.7 and kw["top_p"] == 0.9
    assert kw["top_k"] == 40 and kw["min_p"] == 0.05 and kw["repetition_penalty"] == 1.1
    off = generation_kwargs(Sampling(do_sample=True), 3, False, [2], 0)
    assert off["min_p"] is None and off["top_k"] == 0 and off["top_p"] == 1.0
    transformers.GenerationConfig(**kw).validate(strict=True)


# -- the backend on a tiny dummy architecture ---------------------------------------------

TINY = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 97,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "max_position_embeddings": 128,
}


@pytest.fixture
def tiny_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    return tmp_path


def tiny(tiny_dir, **opts) -> PyTorchBackend:
    ref = {"kind": "path", "ref": str(tiny_dir)}
    return PyTorchBackend(ref, {**cfg("fp32", **opts), "device": "cpu", "weights": "dummy"})


def test_dummy_load_records_engine_args_and_seed(tiny_dir) -> None:
    backend = tiny(tiny_dir, cache_implementation="static")
    info = backend.load()
    assert info.model["weights"] == "dummy" and info.model["dummy"]["seed"] == 0
    assert info.model["dummy"]["route"] == "from_config"
    assert info.model["engine_args"]["generation"]["cache_implementation"] == "static"
    json.dumps(info.model)
    again = tiny(tiny_dir)
    again.load()
    w1 = backend.model.model.layers[0].mlp.up_proj.weight
    assert torch.equal(w1, again.model.model.layers[0].mlp.up_proj.weight)  # seeded init
    assert backend.vocab_token_ids() == [0, *range(3, 97)]
    with pytest.raises(ModelLoadError, match=r"model\.tokenizer with weights: dummy"):
        backend.encode("hello")


@pytest.mark.parametrize("cache", [None, "static"])
def test_dummy_exact_lengths_and_sampling_seed(tiny_dir, cache) -> None:
    backend = tiny(tiny_dir, **({"cache_implementation": cache} if cache else {}))
    backend.load()
    prompts = [Prompt([5, 6, 7]), Prompt([8])]
    gens = backend.generate(prompts, 6, exact=True)
    assert [(g.tokens_in, g.tokens_out, len(g.token_times)) for g in gens] == [(3, 6, 6), (1, 6, 6)]
    assert gens[0].text is None
    s = Sampling(do_sample=True, temperature=1.5, top_k=0, seed=11)
    model_gen = backend.model.generate

    outputs = []

    def spy(**kw):
        out = model_gen(**kw)
        outputs.append(out[:, -6:].tolist())
        return out

    backend.model.generate = spy
    backend.generate(prompts, 6, exact=True, sampling=s)
    backend.generate(prompts, 6, exact=True, sampling=s)
    backend.generate(
        prompts, 6, exact=True, sampling=Sampling(do_sample=True, temperature=1.5, seed=12)
    )
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]


def test_compile_wraps_forward(tiny_dir) -> None:
    backend = tiny(tiny_dir, compile=True, compile_mode="default")
    info = backend.load()
    # torch.compile is lazy: nothing compiles until the first forward (the warmup runs)
    assert hasattr(backend.model.forward, "_torchdynamo_orig_callable")
    assert info.model["engine_args"]["compile"]["mode"] == "default"


def test_bnb_on_cpu_fails_before_loading(tiny_dir) -> None:
    with pytest.raises(BackendUnavailable, match="bnb_nf4 needs CUDA and bitsandbytes"):
        tiny(tiny_dir, quantization="bnb_nf4").load()


def test_dummy_unknown_hub_id(tiny_dir) -> None:
    backend = PyTorchBackend({"kind": "hf", "ref": "meta-llama/Llama-3.2-1"},
                             {**cfg("fp32"), "device": "cpu", "weights": "dummy"})  # fmt: skip
    with pytest.raises(ModelLoadError, match="did you mean"):
        backend.load()


def test_state_dict_route_keeps_the_random_weights(tiny_dir) -> None:
    """The path bitsandbytes / device_map / tp runs take (without a quantizer, which needs CUDA):
    the random weights go through from_pretrained(None, config, state_dict) unchanged."""
    from harness.models.dummy_weights import build_random_model, load_random_weights

    model, route = build_random_model(TINY, torch.device("cpu"), {"dtype": torch.float32})
    assert route == "from_config"
    config = transformers.AutoConfig.for_model(**TINY)
    loaded = load_random_weights(type(model), config, model.state_dict(), {"dtype": torch.float32})
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
