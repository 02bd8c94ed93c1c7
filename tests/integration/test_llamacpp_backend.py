"""The llamacpp backend on the real SmolLM2-135M GGUF (alias ``smollm2-135m``), CPU.

Loading takes ~0.2 s and 32 tokens ~0.5 s on two cores, so the whole file runs in well under 60 s.
"""

from __future__ import annotations

import itertools
import re

import pytest

pytest.importorskip("llama_cpp")

from harness.backends.base import Sampling
from harness.backends.llamacpp import LlamaCppBackend
from harness.models.refs import ModelRefError, resolve_ref
from harness.workloads.synthetic import make_prompts

pytestmark = pytest.mark.integration
SMOLLM2_PARAMS = 134_515_008
NEW = 24


def config(batch_size: int = 1, **options) -> dict:
    return {
        "backend": "llamacpp",
        "precision": "fp32",
        "device": "cpu",
        "batch_size": batch_size,
        "workload": {"kind": "synthetic", "input_tokens": 16, "output_tokens": NEW},
        "llamacpp": {"n_threads": 2, **options},
    }


@pytest.fixture(scope="module")
def resolved() -> dict:
    try:
        return resolve_ref("smollm2-135m")
    except ModelRefError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def loaded(resolved):
    backend = LlamaCppBackend(resolved, config(batch_size=1))
    info = backend.load()
    yield backend, info
    backend.unload()


@pytest.fixture(scope="module")
def prompts(loaded):
    backend, _ = loaded
    return make_prompts(backend.vocab_token_ids(), num_prompts=4, input_tokens=16, seed=0)


def test_load_records_provenance(loaded) -> None:
    _, info = loaded
    assert info.device == "cpu" and info.dtype == "gguf Q4_1, kv f32"
    m = info.model
    assert m["file"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and m["kind"] == "alias"
    assert re.fullmatch(r"[0-9a-f]{64}", m["gguf_sha256"])
    assert m["params"] == SMOLLM2_PARAMS and m["n_vocab"] == 49152
    ctx = m["engine_args"]["context"]
    assert ctx["n_ctx"] == 256 and ctx["n_threads"] == 2
    assert ctx["n_batch"] == 256  # llama.cpp clamps n_batch (512) to n_ctx; results show it
    assert set(m["eog_token_ids"]) >= {2}  # <|im_end|>, the GGUF's eos_token_id
    assert info.versions["llama_cpp_python"] == "0.3.16"
    assert "CPU" in info.versions["llama_cpp_system_info"]


def test_tokens_and_vocabulary(loaded) -> None:
    backend, _ = loaded
    ids = backend.encode("Hello world")
    assert ids and 1 not in ids  # no BOS
    assert backend.decode_text(ids) == "Hello world"
    assert backend.encode("<|im_end|>") != [2]  # special-token text is not parsed
    vocab = backend.vocab_token_ids()
    assert len(vocab) == 49152 - 17 and min(vocab) == 17  # the 17 control tokens are excluded


def test_flops_from_the_gguf(loaded) -> None:
    backend, _ = loaded
    f = backend.flops_per_token(64)
    # tied embeddings: N_matmul equals all parameters; attention 2 * 30 layers * 64 * 9 * 64
    assert f.method == "analytical" and f.params == SMOLLM2_PARAMS
    assert f.per_token == 2 * SMOLLM2_PARAMS + 2 * 30 * 64 * 9 * 64


#: llama.cpp's CPU kernels compute a ubatch of 32 query tokens or more differently from a smaller
#: one (ggml-org/llama.cpp#24962: identical sequences in one ubatch diverge from 32 tokens on):
#: four 16-token prompts prefilled together are one 64-token ubatch, a prompt alone is 16. The
#: equality checks below compare lembench's sequence bookkeeping, so they keep every ubatch at 16
#: tokens (llama.cpp splits each llama_decode into ubatches of n_ubatch).
EXACT = {"n_ubatch": 16}


def test_native_batch_matches_batch_1_and_sequential(resolved, prompts) -> None:
    backend = LlamaCppBackend(resolved, config(batch_size=1, **EXACT))
    backend.load()
    singles = [backend.generate([p], NEW, exact=True)[0] for p in prompts]
    batch = backend.generate(prompts, NEW, exact=True)  # grows the context to 4 sequences
    ctx = backend._args["context"]
    assert ctx["n_seq_max"] == 4 and ctx["n_ctx"] == 4 * 256
    assert ctx["n_batch"] == 512  # the configured 512 again, no longer clamped to 256
    assert [g.text for g in batch] == [g.text for g in singles]
    assert all(g.tokens_out == NEW and g.tokens_in == 16 for g in batch)
    t0 = batch[0].t_start
    for g in batch:
        assert g.t_start == t0 and len(g.token_times) == NEW
        assert t0 < g.token_times[0] and g.token_times == sorted(g.token_times)
    assert len({g.token_times[-1] for g in batch}) == 1  # one decode per step for all

    backend.unload()
    seq = LlamaCppBackend(resolved, config(batch_size=4, batching="sequential", **EXACT))
    seq.load()
    try:
        out = seq.generate(prompts, NEW, exact=True)
        assert seq._args["context"]["n_seq_max"] == 1
    finally:
        seq.unload()
    assert [g.text for g in out] == [g.text for g in singles]
    for earlier, later in itertools.pairwise(out):  # one prompt after another
        assert earlier.token_times[-1] <= later.t_start


def test_greedy_matches_llama_cpp_pythons_own_generate(resolved, prompts) -> None:
    """An independent path: Llama.generate with llama.cpp's greedy sampler (temp=0). Llama's KV
    cache is f16, so ours is too (fp16): random-token prompts give near-ties that f32 vs f16
    rounding can flip."""
    from llama_cpp import Llama

    backend = LlamaCppBackend(resolved, {**config(batch_size=2, **EXACT), "precision": "fp16"})
    info = backend.load()
    llm = Llama(info.model["file"], n_ctx=256, n_threads=2, n_ubatch=16, verbose=False)
    try:
        ours = backend.generate(prompts[:2], NEW, exact=False)
        eog = set(info.model["eog_token_ids"])
        for prompt, gen in zip(prompts[:2], ours, strict=True):
            llm.reset()  # no prefix reuse from the previous prompt
            ids = []
            for token in llm.generate(prompt.token_ids, temp=0.0, repeat_penalty=1.0):
                ids.append(token)
                if token in eog or len(ids) == NEW:
                    break
            assert gen.tokens_out == len(ids)
            assert gen.text == backend.decode_text(ids)
    finally:
        llm.close()
        backend.unload()


def test_sampling_is_seeded_and_the_same_native_or_sequential(loaded, prompts) -> None:
    backend, _ = loaded
    s = Sampling(preset="standard", do_sample=True, top_p=0.95, top_k=50, seed=7)
    a = backend.generate(prompts[:3], NEW, exact=True, sampling=s)
    b = backend.generate(prompts[:3], NEW, exact=True, sampling=s)
    assert [g.text for g in a] == [g.text for g in b]
    c = backend.generate(prompts[:3], NEW, exact=True, sampling=Sampling(do_sample=True, seed=8))
    assert [g.text for g in c] != [g.text for g in a]
    greedy = backend.generate(prompts[:3], NEW, exact=True)
    assert [g.text for g in greedy] != [g.text for g in a]


def test_fixed_n_ctx_too_small_is_a_clear_error(resolved, prompts) -> None:
    backend = LlamaCppBackend(resolved, config(batch_size=1, n_ctx=64))
    backend.load()
    try:
        with pytest.raises(ValueError, match="raise n_ctx"):
            backend.generate(prompts[:2], NEW, exact=True)  # 2 x 40 tokens > 64
        assert backend.generate(prompts[:1], NEW, exact=True)[0].tokens_out == NEW
    finally:
        backend.unload()
