"""The sglang backend against a fake of SGLang's documented API (tests/fakes/sglang_fake): the
offline Engine streamed on harness.backends.aio's loop, and a running server's native /generate
on a loopback fake server. Not run on hardware."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness.backends import aio
from harness.backends.base import (
    BackendOOM,
    BackendUnavailable,
    ModelLoadError,
    Prompt,
    Sampling,
)
from harness.backends.sglang import (
    CLIENT_OPTIONS,
    OPTIONS_SCHEMA,
    SGLangBackend,
    Tally,
    engine_kwargs,
    parse_event,
    sampling_params,
)
from lembench.errors import UserError
from lembench.suite import load_suite

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "sglang_fake"
HF = {"kind": "hf", "ref": "fake-org/tiny-llama", "gguf_file": None, "revision": None,
      "tokenizer": None}  # fmt: skip
BASE: dict[str, Any] = {"backend": "sglang", "precision": "bf16", "device": "auto"}


@pytest.fixture
def fake_sglang(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The fake sglang package on sys.path for one test, removed again afterwards."""
    for name in [m for m in sys.modules if m == "sglang" or m.startswith("sglang.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(FAKE))
    monkeypatch.setenv("LEMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    import sglang

    yield sglang
    sglang.LIVE.clear()
    sglang._sim.CALLS.clear()
    for name in [m for m in sys.modules if m == "sglang" or m.startswith("sglang.")]:
        del sys.modules[name]


def make(config: dict[str, Any] | None = None, model: dict[str, Any] | None = None):
    return SGLangBackend(dict(model or HF), {**BASE, **(config or {})})


def prompts(*rows: list[int]) -> list[Prompt]:
    return [Prompt(token_ids=list(r)) for r in rows]


# -- pure mappings --------------------------------------------------------------------------------


def test_engine_kwargs_are_server_args(fake_sglang: Any) -> None:
    options = {"mem_fraction_static": 0.8, "tp_size": 2, "kv_cache_dtype": "fp8_e5m2",
               "disable_radix_cache": True, "timeout_s": 5}  # fmt: skip
    kwargs, dummy = engine_kwargs({**BASE, "device": "cuda:1", "sglang": options}, HF)
    assert kwargs == {
        "model_path": "fake-org/tiny-llama", "dtype": "bfloat16", "device": "cuda",
        "base_gpu_id": 1, "mem_fraction_static": 0.8, "tp_size": 2,
        "kv_cache_dtype": "fp8_e5m2", "disable_radix_cache": True, "log_level": "error",
    }  # fmt: skip
    assert dummy == {}
    # Every engine option of the schema is a ServerArgs field the engine accepts.
    engine_options = set(OPTIONS_SCHEMA["properties"]) - set(CLIENT_OPTIONS)
    assert engine_options <= fake_sglang._sim.SERVER_ARGS


def test_sampling_params_greedy_exact_and_sampled(fake_sglang: Any) -> None:
    greedy = sampling_params(Sampling(), 7, exact=True)
    assert greedy == {"max_new_tokens": 7, "ignore_eos": True, "temperature": 0.0}
    sampled = sampling_params(
        Sampling(preset="x", do_sample=True, temperature=0.7, top_p=0.9, top_k=0, seed=3), 4, False
    )
    assert sampled["top_k"] == -1 and sampled["sampling_seed"] == 3 and not sampled["ignore_eos"]
    for params in (greedy, sampled):  # SamplingParams(**params) accepts them
        fake_sglang._sim.check_sampling(params)


def test_parse_event_lines() -> None:
    assert parse_event('data: {"text": "a", "meta_info": {}}') == {"text": "a", "meta_info": {}}
    assert parse_event("data: [DONE]") is None and parse_event("") is None
    with pytest.raises(RuntimeError, match="server error"):
        parse_event('data: {"error": {"message": "boom"}}')


def test_a_chunk_of_several_tokens_stamps_each_at_its_arrival() -> None:
    tally = Tally(t_start=1.0)
    tally.absorb({"meta_info": {"completion_tokens": 1, "prompt_tokens": 4}}, 2.0)
    tally.absorb({"text": "abc", "meta_info": {"completion_tokens": 3}}, 3.0)
    gen = tally.generation(Prompt(token_ids=[5, 6, 7, 8]))
    assert gen.token_times == [2.0, 3.0, 3.0] and gen.tokens_out == 3 and gen.tokens_in == 4
    assert gen.text == "abc"


# -- the offline engine ---------------------------------------------------------------------------


def test_offline_batch_streams_every_request(fake_sglang: Any) -> None:
    backend = make()
    info = backend.load()
    assert info.model["engine"] == "offline" and info.versions["sglang"] is None  # fake: no dist
    # The engine adopted harness.backends.aio's loop, so async_generate works there.
    assert backend._engine.loop is aio.loop()
    gens = backend.generate(prompts([3, 4, 5], [10, 11]), 5, exact=True)
    assert [g.tokens_out for g in gens] == [5, 5]
    assert [g.tokens_in for g in gens] == [3, 2]
    for gen in gens:
        assert gen.t_start <= gen.token_times[0] and gen.token_times == sorted(gen.token_times)
        assert gen.text.startswith("<6>") or gen.text.startswith("<12>")
    assert all(t.e2e_latency_s is not None for t in backend.tallies)
    calls = fake_sglang._sim.CALLS
    assert calls[0]["sampling_params"] == {"max_new_tokens": 5, "ignore_eos": True,
                                            "temperature": 0.0}  # fmt: skip
    backend.unload()
    assert not fake_sglang.LIVE


def test_without_exact_the_request_stops_at_eos(fake_sglang: Any) -> None:
    backend = make()
    backend.load()
    (gen,) = backend.generate(prompts([1]), 8, exact=False)  # 1 -> 2 (EOS)
    assert gen.tokens_out == 1
    backend.unload()


def test_multi_token_chunks_share_their_arrival_time(fake_sglang: Any, monkeypatch) -> None:
    monkeypatch.setattr(fake_sglang._sim, "STEP_S", 0.002)
    backend = make({"sglang": {"random_seed": 1}})
    backend.load()
    backend._engine.interval = 3  # as ServerArgs.stream_interval=3 does
    (gen,) = backend.generate(prompts([3]), 6, exact=True)
    assert gen.tokens_out == 6
    assert gen.token_times[0] == gen.token_times[2] < gen.token_times[3] == gen.token_times[5]
    backend.unload()


def test_traffic_requests_run_concurrently_on_the_loop(fake_sglang: Any) -> None:
    backend = make({"traffic": {"pattern": "poisson", "qps": 10}})
    backend.load()

    async def two() -> list[Any]:
        return list(await asyncio.gather(
            backend.agenerate(Prompt(token_ids=[3]), 4, True),
            backend.agenerate(Prompt(token_ids=[4, 5]), 3, True),
        ))  # fmt: skip

    first, second = aio.run(two())
    assert (first.tokens_out, second.tokens_out) == (4, 3)
    assert second.t_start < first.token_times[-1]  # submitted while the first still ran
    backend.unload()


def test_dummy_weights_load_the_bundled_architecture(fake_sglang: Any) -> None:
    from harness.models.dummy_weights import bundled_config, dummy_vocab_token_ids

    model = {**HF, "ref": "meta-llama/Llama-3.2-1B"}
    backend = make({"weights": "dummy"}, model)
    info = backend.load()
    args = info.model["engine_args"]
    assert args["load_format"] == "dummy" and args["skip_tokenizer_init"] is True
    assert info.model["dummy_config_sha256"]
    assert backend.vocab_token_ids() == dummy_vocab_token_ids(bundled_config(model["ref"]))
    with pytest.raises(ValueError, match="without a tokenizer"):
        backend.encode("hello")
    backend.unload()


def test_load_errors_map_to_the_backend_errors(fake_sglang: Any, monkeypatch) -> None:
    with pytest.raises(ModelLoadError, match="cannot load"):
        make(model={**HF, "ref": "missing/model"}).load()
    holder = make()
    holder.load()
    with pytest.raises(BackendOOM):
        make().load()  # the fake GPU is taken
    holder.unload()
    monkeypatch.setitem(sys.modules, "sglang", None)  # not installed
    with pytest.raises(BackendUnavailable, match="lembench images build sglang"):
        make().load()


# -- a running server -----------------------------------------------------------------------------


@pytest.fixture
def server(fake_sglang: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from harness.backends import openai_compat

    monkeypatch.syspath_prepend(str(FAKE))
    from server import FakeServer

    monkeypatch.setattr(openai_compat, "load_tokenizer", lambda ref: _WordVocab())
    fake = FakeServer()
    with fake as url:
        fake.url = url
        yield fake


class _WordVocab:
    """What openai_compat.load_tokenizer returns, for a model this side knows."""

    vocab: ClassVar[list[int]] = list(range(3, 64))

    def encode(self, text: str) -> list[int]:
        return [3 + len(w) for w in text.split()]


def test_server_mode_streams_native_generate(server: Any) -> None:
    backend = make({"sglang": {"server_url": server.url + "/"}})
    info = backend.load()
    assert info.model["engine"] == "server" and info.device == "server"
    assert info.model["server_model"]["model_path"] == "fake-org/tiny-llama"
    gens = backend.generate(prompts([3, 4], [20]), 4, exact=True)
    assert [g.tokens_out for g in gens] == [4, 4] and [g.tokens_in for g in gens] == [2, 1]
    body = server.bodies[-1]
    assert body["stream"] is True and body["sampling_params"]["ignore_eos"] is True
    (traffic,) = [aio.run(backend.agenerate(Prompt(token_ids=[5]), 2, True))]
    assert traffic.tokens_out == 2
    assert backend.encode("ab c") == [5, 4] and backend.vocab_token_ids()[0] == 3
    assert backend.flops_per_token(8).method == "unavailable"  # a Hub id without bundled config
    server.fail_with = 400
    with pytest.raises(RuntimeError, match="answered 400"):
        backend.generate(prompts([3]), 2, exact=True)
    backend.unload()


def test_server_mode_errors(fake_sglang: Any) -> None:
    with pytest.raises(BackendUnavailable, match="no SGLang server"):
        make({"sglang": {"server_url": "http://127.0.0.1:9", "timeout_s": 2}}).load()
    with pytest.raises(ModelLoadError, match="weights: dummy"):
        make({"weights": "dummy", "sglang": {"server_url": "http://127.0.0.1:9"}}).load()


# -- the suite ------------------------------------------------------------------------------------


def test_suite_takes_an_sglang_block_and_names_its_engine(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    head = "schema_version: 3\nname: s\nexperiment:\n  backend: sglang\n  model: m/m\n"
    path.write_text(head + "  sglang: {tp_size: 2}\n  traffic: {pattern: poisson, qps: 2}\n")
    (experiment,) = load_suite(path).experiments
    assert experiment.config["sglang"] == {"tp_size": 2}
    path.write_text(head + "  sglang: {tp: 2}\n")
    with pytest.raises(UserError, match=r"experiment\.sglang\.tp: unknown key for the sglang"):
        load_suite(path)


def test_a_failed_request_ends_its_batch_and_the_device_is_recorded(fake_sglang: Any) -> None:
    backend = make({"device": "cuda:1"})
    info = backend.load()
    assert info.device == "cuda:1" and info.model["engine_args"]["base_gpu_id"] == 1
    with pytest.raises(ValueError, match="at least one token"):
        backend.generate(prompts([3] * 4, []), 50, exact=True)
    backend.unload()
