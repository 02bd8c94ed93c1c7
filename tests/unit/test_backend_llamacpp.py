"""The llamacpp backend's pure parts: option mapping, token choice, vocabulary filter, no model."""

from __future__ import annotations

import sys

import pytest

from harness.backends.base import BackendUnavailable, ModelLoadError, Sampling
from harness.backends.llamacpp import LlamaCppBackend
from harness.backends.llamacpp_options import (
    choose_token,
    engine_args,
    is_ordinary,
    sequence_tokens,
)

np = pytest.importorskip("numpy")

BASE = {
    "backend": "llamacpp",
    "precision": "fp32",
    "device": "cpu",
    "batch_size": 4,
    "workload": {"kind": "synthetic", "input_tokens": 100, "output_tokens": 60},
}


def args(gpu: bool = False, cpus: int = 8, **overrides):
    config = {**BASE, **overrides}
    return engine_args(config, gpu_offload=gpu, cpu_count=cpus)


def test_defaults_follow_llama_cpp_python_and_size_the_context_for_the_batch() -> None:
    a = args()
    assert a["device"] == "cpu" and a["batching"] == "native"
    assert a["model"] == {"n_gpu_layers": 0}
    c = a["context"]
    # 4 sequences x (100 + 60 tokens rounded up to 256)
    assert c["n_seq_max"] == 4 and c["n_ctx"] == 4 * 256
    assert c["n_batch"] == 512 and c["n_ubatch"] == 512
    # Every CPU the process may use (as torch), not Llama's half; batch = n_threads.
    assert c["n_threads"] == 8 and c["n_threads_batch"] == 8
    assert c["flash_attn"] is False and c["offload_kqv"] is True
    assert c["type_k"] == c["type_v"] == "f32"


@pytest.mark.parametrize(
    ("option", "value", "key", "expected"),
    [
        ("n_ctx", 3000, "n_ctx", 3000),
        ("n_ctx", 0, "n_ctx", 0),  # llama.cpp: the model's training context
        ("n_batch", 64, "n_batch", 64),
        ("n_ubatch", 32, "n_ubatch", 32),
        ("n_threads", 3, "n_threads", 3),
        ("n_threads_batch", 6, "n_threads_batch", 6),
        ("flash_attn", True, "flash_attn", True),
        ("offload_kqv", False, "offload_kqv", False),
    ],
)
def test_each_option_sets_its_context_field(option, value, key, expected) -> None:
    assert args(llamacpp={option: value})["context"][key] == expected


def test_n_threads_batch_follows_n_threads_and_n_ubatch_never_exceeds_n_batch() -> None:
    c = args(llamacpp={"n_threads": 3, "n_batch": 128})["context"]
    assert c["n_threads_batch"] == 3 and c["n_ubatch"] == 128
    assert args(cpus=1)["context"]["n_threads"] == 1


def test_the_experiments_threads_key_sets_n_threads_and_the_engine_option_wins() -> None:
    c = args(threads=2)["context"]
    assert (c["n_threads"], c["n_threads_batch"]) == (2, 2)
    assert args(threads=2, llamacpp={"n_threads": 3})["context"]["n_threads"] == 3


def test_sequential_batching_uses_one_sequence() -> None:
    a = args(llamacpp={"batching": "sequential"})
    assert a["batching"] == "sequential"
    assert a["context"]["n_seq_max"] == 1 and a["context"]["n_ctx"] == 256


@pytest.mark.parametrize(("precision", "kv"), [("fp32", "f32"), ("fp16", "f16"), ("bf16", "bf16")])
def test_precision_selects_the_kv_cache_type(precision, kv) -> None:
    c = args(precision=precision)["context"]
    assert c["type_k"] == c["type_v"] == kv


def test_unknown_prompt_lengths_leave_the_context_to_the_first_batch() -> None:
    assert args(workload={"kind": "humaneval"})["context"]["n_ctx"] is None
    assert sequence_tokens({"kind": "jsonl", "path": "x"}) is None
    assert sequence_tokens({"kind": "synthetic"}) == 64  # schema defaults 32 + 32


def test_gpu_devices() -> None:
    auto = args(gpu=True, device="auto")
    assert auto["device"] == "cuda" and auto["model"]["n_gpu_layers"] == 0x7FFFFFFF
    one = args(gpu=True, device="cuda:1", llamacpp={"n_gpu_layers": 10})
    assert one["model"] == {"n_gpu_layers": 10, "split_mode": "none", "main_gpu": 1}
    assert args(gpu=False, device="auto")["device"] == "cpu"
    with pytest.raises(BackendUnavailable, match="GPU offload"):
        args(gpu=False, device="cuda")
    with pytest.raises(ValueError, match="needs device cuda"):
        args(llamacpp={"n_gpu_layers": 5})


def test_engine_args_are_json_safe() -> None:
    import json

    a = args(gpu=True, device="cuda:0")
    assert json.loads(json.dumps(a)) == a


def test_ordinary_tokens_by_attribute() -> None:
    normal, control, user, byte, unknown, unused = 4, 8, 16, 32, 1, 2
    assert is_ordinary(normal) and is_ordinary(byte) and is_ordinary(normal | 64)  # NORMALIZED
    for attr in (control, user, unknown, unused, 0, normal | control):
        assert not is_ordinary(attr)


def test_greedy_is_argmax_and_banned_ids_are_skipped() -> None:
    logits = np.array([0.1, 3.0, 2.0, -1.0], dtype=np.float32)
    assert choose_token(logits) == 1
    assert choose_token(logits, banned=np.array([1])) == 2
    assert logits[1] == 3.0  # the engine's buffer is not modified
    # temperature 0 is greedy even when sampling is asked for
    assert choose_token(logits, Sampling(do_sample=True, temperature=0.0)) == 1


def test_sampling_is_seeded_and_follows_the_distribution() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.2], dtype=np.float64))
    s = Sampling(do_sample=True, seed=3)
    draws = [choose_token(logits, s, np.random.default_rng(k)) for k in range(3000)]
    freq = np.bincount(draws, minlength=3) / len(draws)
    assert np.allclose(freq, [0.5, 0.3, 0.2], atol=0.04)
    a = [choose_token(logits, s, rng) for rng in [np.random.default_rng([3, 0])] * 20]
    b = [choose_token(logits, s, rng) for rng in [np.random.default_rng([3, 0])] * 20]
    assert a == b
    with pytest.raises(ValueError, match="Generator"):
        choose_token(logits, s)


def test_filters_top_k_top_p_min_p() -> None:
    p = np.array([0.4, 0.3, 0.2, 0.1])
    logits = np.log(p)
    rng = np.random.default_rng(0)

    def support(**kw) -> set[int]:
        s = Sampling(do_sample=True, **kw)
        return {choose_token(logits, s, rng) for _ in range(400)}

    assert support(top_k=2) == {0, 1}
    assert support(top_p=0.65) == {0, 1}  # 0.4 < 0.65 <= 0.7: the two most likely
    assert support(top_p=0.71) == {0, 1, 2}
    assert support(min_p=0.6) == {0, 1}  # keep p >= 0.6 * 0.4 = 0.24
    assert support() == {0, 1, 2, 3}


def test_temperature_and_repetition_penalty() -> None:
    logits = np.array([2.0, 1.9, -5.0])
    rng = np.random.default_rng(0)
    cold = Sampling(do_sample=True, temperature=0.01)
    assert {choose_token(logits, cold, rng) for _ in range(100)} == {0}
    # Token 0 seen before: its positive logit is divided by 10 and token 1 wins.
    pen = Sampling(do_sample=True, temperature=0.01, repetition_penalty=10.0)
    assert {choose_token(logits, pen, rng, history=[0, 0]) for _ in range(100)} == {1}
    # A negative logit is multiplied instead (pushed further down).
    neg = np.array([-1.0, -1.05])
    assert choose_token(neg, pen, rng, history=[0]) == 1


def test_generate_before_load_and_non_gguf_models_fail_clearly(monkeypatch) -> None:
    backend = LlamaCppBackend({"kind": "hf", "ref": "org/model"}, dict(BASE))
    with pytest.raises(RuntimeError, match="load"):
        backend.generate([], 4, True)
    pytest.importorskip("llama_cpp")
    with pytest.raises(ModelLoadError, match="needs a GGUF file"):
        backend.load()
    dummy = LlamaCppBackend({"kind": "hf", "ref": "org/model"}, {**BASE, "weights": "dummy"})
    with pytest.raises(ModelLoadError, match="dummy"):
        dummy.load()


def test_missing_engine_is_backend_unavailable(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    backend = LlamaCppBackend({"kind": "gguf", "ref": "/x.gguf"}, dict(BASE))
    with pytest.raises(BackendUnavailable, match="llama-cpp-python"):
        backend.load()


def test_importing_the_module_does_not_import_the_engine() -> None:
    import subprocess

    code = (
        "import sys, harness.backends.llamacpp; "
        "sys.exit(1 if 'llama_cpp' in sys.modules or 'numpy' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _fake_hub(monkeypatch, download) -> list[dict]:
    """A fake ``huggingface_hub`` exposing ``hf_hub_download`` as documented (keyword arguments
    repo_id, filename, revision; returns the cached file's path as a str)."""
    import types

    calls: list[dict] = []

    def hf_hub_download(repo_id: str, filename: str, *, revision: str | None = None, **kw):
        calls.append({"repo_id": repo_id, "filename": filename, "revision": revision})
        return download(repo_id, filename)

    monkeypatch.setitem(
        sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download)
    )
    return calls


def test_a_hub_repo_with_gguf_file_resolves_through_the_hub_cache(monkeypatch, tmp_path) -> None:
    cached = tmp_path / "model.Q4_K_M.gguf"
    cached.write_bytes(b"GGUF")
    calls = _fake_hub(monkeypatch, lambda repo, name: str(cached))
    ref = {"kind": "hf", "ref": "org/model-GGUF", "gguf_file": "model.Q4_K_M.gguf",
           "revision": "abc123"}  # fmt: skip
    backend = LlamaCppBackend(ref, dict(BASE))
    assert backend._gguf_path() == cached
    assert calls == [
        {"repo_id": "org/model-GGUF", "filename": "model.Q4_K_M.gguf", "revision": "abc123"}
    ]


def test_a_failed_hub_download_is_a_one_line_model_load_error(monkeypatch) -> None:
    def offline(repo: str, name: str) -> str:
        raise OSError("We couldn't connect to 'https://huggingface.co'\nmore detail")

    _fake_hub(monkeypatch, offline)
    ref = {"kind": "hf", "ref": "org/model-GGUF", "gguf_file": "m.gguf"}
    with pytest.raises(ModelLoadError) as info:
        LlamaCppBackend(ref, dict(BASE))._gguf_path()
    message = str(info.value)
    assert "\n" not in message
    assert "m.gguf" in message and "org/model-GGUF" in message and "OSError" in message


def test_a_hub_gguf_without_huggingface_hub_is_backend_unavailable(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    ref = {"kind": "hf", "ref": "org/model-GGUF", "gguf_file": "m.gguf"}
    with pytest.raises(BackendUnavailable, match="huggingface_hub"):
        LlamaCppBackend(ref, dict(BASE))._gguf_path()
