"""The vllm backend against a fake of vLLM 0.11.0 (tests/fakes/vllm_fake; no GPU, no vLLM).

The fake mirrors vLLM's signatures (unknown engine or sampling arguments raise TypeError) and
simulates a deterministic model: after token t comes t + 1 (mod vocab), EOS is id 2.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
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
from harness.backends.vllm import (
    OPTION_ARGS,
    VllmBackend,
    engine_kwargs,
    is_oom,
    model_source,
    sampling_kwargs,
    visible_devices,
)
from harness.contract.schemas import load_schema
from harness.window.flops import estimate_from_config

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "vllm_fake"
HF = {"kind": "hf", "ref": "fake-org/tiny-llama", "gguf_file": None, "revision": None,
      "tokenizer": None}  # fmt: skip
BASE: dict[str, Any] = {"backend": "vllm", "precision": "fp16", "device": "auto"}


def _drop_vllm_modules() -> None:
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The fake vllm package on sys.path for one test, removed again afterwards."""
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(FAKE))
    monkeypatch.setenv("LEMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    import vllm

    yield vllm
    _drop_vllm_modules()


def make(config: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> VllmBackend:
    return VllmBackend(dict(model or HF), {**BASE, **(config or {})})


def prompts(*rows: list[int]) -> list[Prompt]:
    return [Prompt(token_ids=list(r)) for r in rows]


# -- pure mappings --------------------------------------------------------------------------------

OPTION_CASES = [
    ("gpu_memory_utilization", 0.8),
    ("max_model_len", 4096),
    ("max_num_seqs", 64),
    ("max_num_batched_tokens", 8192),
    ("enable_prefix_caching", False),
    ("enable_chunked_prefill", True),
    ("enforce_eager", True),
    ("kv_cache_dtype", "fp8_e5m2"),
    ("quantization", "awq_marlin"),
    ("quantization", None),
    ("tensor_parallel_size", 2),
    ("pipeline_parallel_size", 2),
    ("swap_space", 0),
    ("cpu_offload_gb", 1.5),
    (
        "speculative_config",
        {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4},
    ),
    ("speculative_config", None),
]


@pytest.mark.parametrize(("option", "value"), OPTION_CASES)
def test_each_option_maps_to_its_engine_arg(fake_vllm: Any, option: str, value: Any) -> None:
    kwargs = engine_kwargs({"precision": "bf16", "vllm": {option: value}}, {"model": "m"})
    assert kwargs[OPTION_ARGS[option]] == value
    assert kwargs["dtype"] == "bfloat16" and kwargs["model"] == "m"
    # The engine accepts it under that name with that value (unknown names raise TypeError).
    args = fake_vllm.EngineArgs(**kwargs)
    assert getattr(args, OPTION_ARGS[option]) == value


def test_every_schema_option_has_a_mapping_and_absent_options_are_not_passed() -> None:
    props = load_schema("suite")["$defs"]["vllm_options"]["properties"]
    assert set(props) == set(OPTION_ARGS)
    kwargs = engine_kwargs({"precision": "fp32"}, {"model": "m"})
    assert kwargs == {"model": "m", "dtype": "float32", "disable_log_stats": True}


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", "float32"), ("fp16", "float16"),
                                                  ("bf16", "bfloat16")])  # fmt: skip
def test_precision_maps_to_vllm_dtype(precision: str, dtype: str) -> None:
    assert engine_kwargs({"precision": precision}, {"model": "m"})["dtype"] == dtype


def test_speculative_config_is_copied_not_shared() -> None:
    spec = {"method": "ngram", "num_speculative_tokens": 2}
    kwargs = engine_kwargs({"vllm": {"speculative_config": spec}}, {"model": "m"})
    kwargs["speculative_config"]["num_speculative_tokens"] = 9
    assert spec["num_speculative_tokens"] == 2


def test_unknown_option_and_unknown_engine_arg_fail(fake_vllm: Any) -> None:
    with pytest.raises(ValueError, match="unknown vllm option"):
        engine_kwargs({"vllm": {"max_batch_size": 4}}, {"model": "m"})
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_batch_size'"):
        fake_vllm.LLM("fake-org/tiny-llama", max_batch_size=4)


def test_model_source_per_reference_kind(tmp_path: Path) -> None:
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_source({**HF, "revision": "abc", "tokenizer": "org/tok"}) == {
        "model": "fake-org/tiny-llama", "revision": "abc", "tokenizer": "org/tok"}  # fmt: skip
    assert model_source({**HF, "kind": "gguf", "ref": str(gguf)}) == {"model": str(gguf)}
    folder = {**HF, "kind": "path", "ref": str(tmp_path)}
    assert model_source(folder) == {"model": str(tmp_path)}
    assert model_source({**folder, "gguf_file": "m.Q4.gguf"}) == {"model": str(gguf)}
    with pytest.raises(ModelLoadError, match="local file only"):
        model_source({**HF, "gguf_file": "m.Q4.gguf"})


def test_sampling_greedy_and_exact(fake_vllm: Any) -> None:
    greedy = sampling_kwargs(GREEDY, 7, exact=False, detokenize=True)
    assert greedy == {"n": 1, "max_tokens": 7, "min_tokens": 0, "ignore_eos": False,
                      "detokenize": True, "temperature": 0.0}  # fmt: skip
    exact = sampling_kwargs(GREEDY, 7, exact=True, detokenize=False)
    assert exact["min_tokens"] == 7 and exact["ignore_eos"] is True and not exact["detokenize"]
    params = fake_vllm.SamplingParams(**exact, output_kind=fake_vllm.RequestOutputKind.DELTA)
    assert params.temperature == 0.0 and params.max_tokens == params.min_tokens == 7


@pytest.mark.parametrize(
    "sampling",
    [
        Sampling("standard", True, 1.0, 0.95, 50, 0.0, 1.0, 0),
        Sampling("creative", True, 1.2, 0.95, 0, 0.0, 1.0, 3),
        Sampling("factual", True, 0.3, 0.9, 10, 0.05, 1.1, 42),
    ],
)
def test_sampling_presets_map_field_by_field(fake_vllm: Any, sampling: Sampling) -> None:
    kw = sampling_kwargs(sampling, 5, exact=False, detokenize=True)
    assert (kw["temperature"], kw["top_p"], kw["top_k"], kw["min_p"]) == (
        sampling.temperature, sampling.top_p, sampling.top_k, sampling.min_p)  # fmt: skip
    assert kw["repetition_penalty"] == sampling.repetition_penalty and kw["seed"] == sampling.seed
    fake_vllm.SamplingParams(**kw)  # every name is a real SamplingParams field


def test_visible_devices() -> None:
    assert visible_devices("auto", None) is None and visible_devices("cuda", "3") is None
    assert visible_devices("cuda:1", None) == "1"
    assert visible_devices("cuda:1", "4,6") == "6"
    with pytest.raises(BackendUnavailable, match="only 2 visible"):
        visible_devices("cuda:2", "4,6")


def test_is_oom_follows_the_exception_chain() -> None:
    try:
        try:
            raise ValueError("No available memory for the cache blocks. Try increasing ...")
        except ValueError as inner:
            raise RuntimeError("Engine core initialization failed") from inner
    except RuntimeError as outer:
        assert is_oom(outer)
    assert is_oom(RuntimeError("CUDA error: out of memory"))
    assert not is_oom(RuntimeError("Engine core initialization failed. See root cause above."))


# -- FLOPs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
def test_config_flops_matches_flops_analytical_on_a_real_model(tied: bool) -> None:
    transformers = pytest.importorskip("transformers")
    from harness.window.flops import attention_flops_per_token, count_params, matmul_params

    cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, tie_word_embeddings=tied)  # fmt: skip
    real = transformers.AutoModelForCausalLM.from_config(cfg)  # tiny, materialised on CPU
    est = estimate_from_config(cfg, 64)
    assert est.method == "analytical" and est.params == count_params(real)
    assert est.per_token == 2.0 * matmul_params(real) + attention_flops_per_token(cfg, 64)


def test_config_flops_unknown_architecture_is_unavailable() -> None:
    est = estimate_from_config(object(), 10)
    assert est.per_token is None and est.method == "unavailable" and est.note


# -- backend against the fake engine ------------------------------------------------------------


def test_import_is_cheap_and_missing_vllm_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "vllm" not in sys.modules  # importing harness.backends.vllm did not import vLLM
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    with pytest.raises(BackendUnavailable, match="lembench images build vllm"):
        make().load()


def test_load_reports_what_ran(fake_vllm: Any) -> None:
    backend = make({"vllm": {"max_num_seqs": 8}})
    info = backend.load()
    assert info.device == "cuda" and info.dtype == "float16" and info.load_time_s > 0
    assert info.versions.keys() >= {"vllm", "torch", "transformers"}
    args = info.model["engine_args"]
    assert args == {"model": "fake-org/tiny-llama", "dtype": "float16", "max_num_seqs": 8,
                    "disable_log_stats": True}  # fmt: skip
    assert info.model["engine"] == "offline" and info.model["architectures"] == ["LlamaForCausalLM"]
    from vllm import _sim

    assert [s["kind"] for s in _sim.STARTS] == ["offline"]
    backend.unload()
    assert _sim.LIVE == []


def test_static_batch_exact_counts_and_step_timestamps(fake_vllm: Any) -> None:
    backend = make()
    backend.load()
    gens = backend.generate(prompts([5, 6, 7], [63], [10]), 6, exact=True)
    for gen, n_in in zip(gens, (3, 1, 1), strict=True):
        assert gen.tokens_in == n_in and gen.tokens_out == 6 and len(gen.token_times) == 6
        assert gen.t_start <= gen.token_times[0]
        assert gen.token_times == sorted(gen.token_times)
        assert len(set(gen.token_times)) == 6  # one host arrival per step
    # Greedy fake model: 63 -> 0 1 2(EOS, ignored with exact) 3 4 5.
    assert gens[1].text == "<3><4><5>"  # the tokenizer drops special ids 0 1 2 from text
    assert gens[0].text == "<8><9><10><11><12><13>"
    backend.unload()


def test_eos_ends_a_request_early_without_exact(fake_vllm: Any) -> None:
    backend = make()
    backend.load()
    short, long = backend.generate(prompts([63], [10]), 6, exact=False)
    assert short.tokens_out == 3 and len(short.token_times) == 3  # 0, 1, EOS(2) counted
    assert long.tokens_out == 6
    backend.unload()


def test_speculative_steps_stamp_several_tokens_at_once(fake_vllm: Any) -> None:
    backend = make({"vllm": {"speculative_config": {"method": "ngram",
                                                    "num_speculative_tokens": 2}}})  # fmt: skip
    backend.load()
    (gen,) = backend.generate(prompts([10]), 7, exact=True)
    assert gen.tokens_out == 7 and len(gen.token_times) == 7
    assert len(set(gen.token_times)) == 3  # steps of 3, 3 and 1 tokens
    backend.unload()


def test_queued_requests_start_later(fake_vllm: Any) -> None:
    backend = make({"vllm": {"max_num_seqs": 1}})
    backend.load()
    first, second = backend.generate(prompts([10], [20]), 3, exact=True)
    assert first.t_start == second.t_start and first.token_times[-1] < second.token_times[0]
    backend.unload()


def test_empty_and_invalid_batches(fake_vllm: Any) -> None:
    backend = make()
    with pytest.raises(RuntimeError, match="load"):
        backend.generate(prompts([1]), 2, exact=True)
    backend.load()
    assert backend.generate([], 3, exact=True) == []
    with pytest.raises(ValueError, match="at least one token"):
        backend.generate([Prompt(token_ids=[])], 3, exact=True)
    backend.unload()


def test_sampling_reaches_the_engine(fake_vllm: Any) -> None:
    backend = make()
    backend.load()
    sampled = Sampling("standard", True, 1.0, 0.95, 50, 0.0, 1.0, 7)
    a = backend.generate(prompts([10]), 5, exact=True, sampling=sampled)[0]
    b = backend.generate(prompts([10]), 5, exact=True, sampling=sampled)[0]
    greedy = backend.generate(prompts([10]), 5, exact=True)[0]
    assert a.text == b.text != greedy.text  # seeded sampling: reproducible, not greedy
    backend.unload()


def test_tokenizer_vocab_and_encode(fake_vllm: Any) -> None:
    backend = make()
    backend.load()
    vocab = backend.vocab_token_ids()
    assert vocab == list(range(3, 63))  # minus special 0-2 and the added token 63
    assert backend.encode("hello world") == backend.encode("hello world")
    assert len(backend.encode("hello world")) == 2
    backend.unload()


def test_dummy_weights_bundled_architecture(fake_vllm: Any, tmp_path: Path) -> None:
    from harness.models.dummy_weights import bundled_config, dummy_vocab_token_ids

    model = {**HF, "ref": "meta-llama/Llama-3.2-1B"}
    backend = make({"weights": "dummy"}, model)
    info = backend.load()
    args = info.model["engine_args"]
    assert args["load_format"] == "dummy" and args["skip_tokenizer_init"] is True
    folder = Path(args["model"])
    assert folder.is_relative_to(tmp_path / "cache")
    assert json.loads((folder / "config.json").read_text()) == bundled_config(model["ref"])
    assert info.model["dummy_config_sha256"] and info.model["dummy_config_source"]
    assert backend.vocab_token_ids() == dummy_vocab_token_ids(bundled_config(model["ref"]))
    with pytest.raises(ValueError, match=r"model\.tokenizer"):
        backend.encode("hello")
    (gen,) = backend.generate(prompts([100, 200]), 4, exact=True)
    assert gen.tokens_out == 4 and gen.text is None
    flops = backend.flops_per_token(128)
    assert flops.method == "analytical" and flops.params == 1_235_814_400  # Llama-3.2-1B, tied
    backend.unload()


def test_dummy_weights_with_a_tokenizer_and_unknown_ids(fake_vllm: Any) -> None:
    model = {**HF, "ref": "meta-llama/Llama-3.2-1B", "tokenizer": "fake-org/tiny-llama"}
    info = make({"weights": "dummy"}, model).load()
    assert info.model["engine_args"]["tokenizer"] == "fake-org/tiny-llama"
    assert "skip_tokenizer_init" not in info.model["engine_args"]
    from vllm import _sim

    _sim.LIVE.clear()
    with pytest.raises(ModelLoadError, match="weights: dummy"):
        make({"weights": "dummy"}, {**HF, "ref": "nobody/no-such-model"}).load()


def test_bad_model_is_a_load_error_and_no_kv_memory_is_oom(fake_vllm: Any) -> None:
    with pytest.raises(ModelLoadError, match="fake-org/missing"):
        make(model={**HF, "ref": "fake-org/missing"}).load()
    with pytest.raises(BackendOOM, match="No available memory for the cache blocks"):
        make({"vllm": {"gpu_memory_utilization": 0.01}}).load()
    with pytest.raises(BackendUnavailable, match="CUDA build"):
        make({"device": "cpu"}).load()


def test_oom_while_generating(fake_vllm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make()
    backend.load()
    from vllm import _sim

    def boom(self: Any) -> Any:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(_sim.EngineCore, "step", boom)
    with pytest.raises(BackendOOM, match="1x4 tokens"):
        backend.generate(prompts([10]), 4, exact=True)
    assert not backend._llm.llm_engine.has_unfinished_requests()  # aborted
    backend.unload()


def test_cuda_index_sets_visible_devices(fake_vllm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    info = make({"device": "cuda:1"}).load()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5" and info.device == "cuda:1"


# -- traffic --------------------------------------------------------------------------------------


def test_a_foreign_running_loop_is_not_taken_for_the_harness_loop(fake_vllm: Any) -> None:
    """A host's own loop running in this thread (Playwright's sync API leaves one in a test
    process) must not receive the engine: its output handler would be bound to the wrong loop."""
    backend = make({"traffic": {"pattern": "concurrency", "concurrency": 2}})

    async def host_application() -> Any:
        backend.load()  # from a thread whose own loop is running
        return aio.run(backend.agenerate(Prompt(token_ids=[10]), 3, exact=True), timeout=30)

    # In a thread of its own: this test process's main thread may run a loop already.
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(asyncio.run(host_application())))
    worker.start()
    worker.join(60)
    (gen,) = out
    assert gen.tokens_out == 3
    backend.unload()


def test_traffic_streams_on_the_harness_loop_and_engines_never_coexist(fake_vllm: Any) -> None:
    from vllm import _sim

    backend = make({"traffic": {"pattern": "concurrency", "concurrency": 2}})
    assert backend.supports_traffic
    info = backend.load()
    assert info.model["engine"] == "async" and [s["kind"] for s in _sim.STARTS] == ["async"]

    async def burst() -> list[Any]:
        return await asyncio.gather(
            backend.agenerate(Prompt(token_ids=[10, 11]), 5, exact=True),
            backend.agenerate(Prompt(token_ids=[63]), 5, exact=False),
            backend.agenerate(Prompt(token_ids=[30]), 4, exact=True),
        )

    a, b, c = aio.run(burst(), timeout=30)
    assert (a.tokens_in, a.tokens_out, b.tokens_out, c.tokens_out) == (2, 5, 3, 4)
    for gen in (a, b, c):
        assert len(gen.token_times) == gen.tokens_out and gen.t_start <= gen.token_times[0]
        assert gen.token_times == sorted(gen.token_times)
    assert a.text == "<12><13><14><15><16>"

    # A static batch now needs the offline engine: the async one is shut down first.
    (gen,) = backend.generate(prompts([10]), 3, exact=True)
    assert gen.tokens_out == 3 and len(_sim.LIVE) == 1
    assert [s["kind"] for s in _sim.STARTS] == ["async", "offline"]
    # ... and back again, from inside the loop.
    back = aio.run(backend.agenerate(Prompt(token_ids=[10]), 2, exact=True), timeout=30)
    assert back.tokens_out == 2 and [s["kind"] for s in _sim.STARTS][-1] == "async"
    assert [s["to"] for s in backend.engine_switches] == ["offline", "async"]
    assert len(_sim.LIVE) == 1
    backend.unload()
    assert _sim.LIVE == []


def test_async_engine_args_are_the_same_engine_args(fake_vllm: Any) -> None:
    from vllm import _sim

    backend = make({"traffic": {"pattern": "poisson", "qps": 1.0}, "vllm": {"max_num_seqs": 4}})
    backend.load()
    args = _sim.STARTS[-1]["args"]
    assert isinstance(args, fake_vllm.AsyncEngineArgs)
    assert (args.max_num_seqs, args.dtype, args.disable_log_stats) == (4, "float16", True)
    backend.unload()
