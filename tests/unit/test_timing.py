"""Token timestamps: the streamer on a fake clock, then the real generate() hook of the PyTorch
backend on a tiny random Llama saved to a folder (no download, a few seconds)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.backends.base import BackendUnavailable, ModelLoadError, Prompt
from harness.backends.pytorch import PyTorchBackend
from harness.window.timing import TokenTimestampStreamer, count_output_tokens


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def test_streamer_skips_the_prompt_and_stamps_each_step() -> None:
    synced: list[float] = []
    clock = FakeClock()
    streamer = TokenTimestampStreamer(clock=clock, synchronize=lambda: synced.append(clock.now))
    streamer.put([[5, 6, 7], [8, 9, 10]])  # prompt ids: not an output token
    assert streamer.steps == 0 and not synced
    streamer.put([11, 12])
    streamer.put([13, 14])
    streamer.end()
    assert streamer.step_times == [100.5, 101.0]
    assert synced == [100.0, 100.5]  # synchronised before each clock read
    assert streamer.ended and streamer.t_end == 101.5


def test_count_output_tokens() -> None:
    eos = frozenset({2, 7})
    assert count_output_tokens([5, 6, 2, 2, 2], eos, exact=False) == 3  # up to and incl. EOS
    assert count_output_tokens([7, 2], eos, exact=False) == 1
    assert count_output_tokens([5, 6, 8], eos, exact=False) == 3  # no EOS: all of them
    assert count_output_tokens([5, 2, 6], eos, exact=True) == 3  # exact: every generated id
    assert count_output_tokens([], eos, exact=False) == 0


# -- the real hook, through PyTorchBackend ------------------------------------------------------

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
WORDS = [f"w{i}" for i in range(60)]
SPECIAL = {"<eos>": 0, "<bos>": 1, "<unk>": 2}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny Llama (hidden 64, 2 layers) and a word-level tokenizer in Hugging Face layout."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path_factory.mktemp("tiny-llama")
    vocab = {**SPECIAL, **{w: i + len(SPECIAL) for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    ).save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=len(vocab), max_position_embeddings=256,
        eos_token_id=0, bos_token_id=1, tie_word_embeddings=True,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config)
    # Shipped sampling defaults, as many chat models have: greedy must ignore all of them.
    model.generation_config = transformers.GenerationConfig(
        do_sample=True, temperature=0.6, top_p=0.9, no_repeat_ngram_size=1, eos_token_id=0,
        bos_token_id=1,
    )  # fmt: skip
    model.save_pretrained(folder)
    return folder


def _backend(model_dir: Path, **config) -> PyTorchBackend:
    return PyTorchBackend(
        {"kind": "path", "ref": str(model_dir)}, {"precision": "fp32", "device": "cpu", **config}
    )


@pytest.fixture(scope="module")
def tiny(model_dir: Path) -> PyTorchBackend:
    backend = _backend(model_dir)
    backend.load()
    return backend


def test_load_info_and_tokens(tiny: PyTorchBackend, model_dir: Path) -> None:
    info = _backend(model_dir).load()
    assert info.device == "cpu" and info.dtype == "float32"
    assert info.model["kind"] == "path" and info.model["ref"] == str(model_dir)
    assert info.model["params"] > 0 and info.load_time_s > 0
    assert info.versions["torch"] and info.versions["transformers"]
    assert tiny.vocab_token_ids() == list(range(len(SPECIAL), len(SPECIAL) + len(WORDS)))
    assert tiny.encode("w0 w5") == [3, 8]  # no BOS added
    assert tiny.tokenizer.pad_token_id == 0  # no pad token: EOS pads (masked out)


def test_exact_batch_has_shared_per_step_timestamps(tiny: PyTorchBackend) -> None:
    prompts = [Prompt([3, 4, 5, 6, 7]), Prompt([8, 9]), Prompt([10, 11, 12])]
    gens = tiny.generate(prompts, max_new_tokens=6, exact=True)
    assert [g.tokens_in for g in gens] == [5, 2, 3]  # real lengths, padding excluded
    for g in gens:
        assert g.tokens_out == 6 and len(g.token_times) == 6
        assert g.token_times == gens[0].token_times  # one decoding step serves the whole batch
        assert g.t_start == gens[0].t_start
        assert g.t_start < g.t_first_token <= g.t_end
        assert g.token_times == sorted(g.token_times)
        assert isinstance(g.text, str)


def test_generation_is_plain_greedy(tiny: PyTorchBackend, model_dir: Path) -> None:
    info = _backend(model_dir).load()
    assert info.model["generation_config_ignored"] == [
        "do_sample", "no_repeat_ngram_size", "temperature", "top_p"
    ]  # fmt: skip
    ids = [3, 4, 5, 3, 4, 5]
    expected = list(ids)
    with torch.no_grad():
        for _ in range(6):  # argmax of the last position, one token at a time: greedy by hand
            logits = tiny.model(torch.tensor([expected])).logits[0, -1]
            logits[0] = float("-inf")  # exact: EOS suppressed
            expected.append(int(logits.argmax()))
    gen = tiny.generate([Prompt(ids)], 6, exact=True)[0]
    assert gen.text == tiny.tokenizer.decode(expected[len(ids) :], skip_special_tokens=True)


def test_greedy_is_deterministic(tiny: PyTorchBackend) -> None:
    prompts = [Prompt([3, 4, 5]), Prompt([20, 21, 22, 23])]
    first = [g.text for g in tiny.generate(prompts, 5, exact=True)]
    assert first == [g.text for g in tiny.generate(prompts, 5, exact=True)]


def test_eos_ends_a_request_unless_exact(model_dir: Path) -> None:
    backend = _backend(model_dir)
    backend.load()
    # A zero final norm makes every logit 0, so greedy argmax picks id 0, which is EOS.
    backend.model.model.norm.weight.data.zero_()
    free = backend.generate([Prompt([3, 4]), Prompt([5])], max_new_tokens=4, exact=False)
    assert [(g.tokens_out, len(g.token_times), g.text) for g in free] == [(1, 1, "")] * 2
    exact = backend.generate([Prompt([3, 4])], max_new_tokens=4, exact=True)
    assert exact[0].tokens_out == 4 and len(exact[0].token_times) == 4


def test_options_threads_attention_precision(model_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        backend = _backend(
            model_dir, precision="bf16", pytorch={"threads": 1, "attn_implementation": "eager"}
        )
        info = backend.load()
        assert torch.get_num_threads() == 1 and info.model["threads"] == 1
        assert info.dtype == "bfloat16" and info.model["attn_implementation"] == "eager"
        assert backend.generate([Prompt([3, 4])], 2, exact=True)[0].tokens_out == 2
    finally:
        torch.set_num_threads(before)


def test_flops_per_token_of_the_loaded_model(tiny: PyTorchBackend) -> None:
    est = tiny.flops_per_token(24)
    assert est.method in {"calflops", "analytical"} and est.per_token > 0
    assert est.sequence_length == 24


def test_load_errors(tmp_path: Path, model_dir: Path, monkeypatch) -> None:
    with pytest.raises(ModelLoadError, match="cannot load model"):
        _backend(tmp_path).load()  # an empty folder
    missing = PyTorchBackend(
        {"kind": "path", "ref": str(model_dir), "gguf_file": "nope.gguf"}, {"device": "cpu"}
    )
    with pytest.raises(ModelLoadError, match=r"nope\.gguf does not exist"):
        missing.load()
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
            _backend(model_dir, device="cuda:0").load()
    with pytest.raises(RuntimeError, match="load"):
        _backend(model_dir).generate([Prompt([3])], 1, exact=True)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(BackendUnavailable, match=r"lembench\[pytorch\]"):
        _backend(model_dir).load()
