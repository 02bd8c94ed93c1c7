"""FLOPs per token: calflops -> analytical -> params_x2 -> unavailable, on a tiny random Llama."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from harness.window.flops import (  # noqa: E402 - after the importorskip guards
    attention_flops_per_token,
    estimate_flops_per_token,
    matmul_params,
)

HIDDEN, LAYERS, HEADS, VOCAB = 64, 2, 4, 256


def _tiny(attn: str = "sdpa", tied: bool = True):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=512,
        tie_word_embeddings=tied,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.set_attn_implementation(attn)
    return model


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def test_matmul_params_counts_the_tied_head_once_per_token(tiny) -> None:
    total = sum(p.numel() for p in tiny.parameters())
    # Tied: the shared matrix is a lookup on the way in (free) and a matmul on the way out.
    assert matmul_params(tiny) == total
    untied = _tiny(tied=False)
    untied_total = sum(p.numel() for p in untied.parameters())
    assert matmul_params(untied) == untied_total - VOCAB * HIDDEN


def test_analytical_formula(tiny) -> None:
    # A config without vocab_size makes calflops' probe fail, so the chain falls to analytical.
    config = SimpleNamespace(
        **{
            k: getattr(tiny.config, k)
            for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "head_dim")
        }
    )
    est = estimate_flops_per_token(tiny, config, 100)
    assert est.method == "analytical"
    n = sum(p.numel() for p in tiny.parameters())
    assert est.per_token == pytest.approx(2 * n + 2 * LAYERS * 100 * HIDDEN)
    assert est.params == n and est.sequence_length == 100
    assert "calflops:" in est.note  # why the first method was skipped
    longer = estimate_flops_per_token(tiny, config, 300)
    assert longer.per_token - est.per_token == pytest.approx(2 * LAYERS * 200 * HIDDEN)


def test_params_x2_when_the_config_is_unusable(tiny) -> None:
    est = estimate_flops_per_token(tiny, SimpleNamespace(), 64)
    assert est.method == "params_x2"
    assert est.per_token == 2 * sum(p.numel() for p in tiny.parameters())
    assert "analytical:" in est.note


def test_calflops_agrees_with_the_analytical_estimate(tiny) -> None:
    pytest.importorskip("calflops")
    for length in (16, 200):  # 200 is past the probe length: attention still scales with it
        est = estimate_flops_per_token(tiny, tiny.config, length)
        assert est.method == "calflops", est.note
        analytical = 2 * matmul_params(tiny) + attention_flops_per_token(tiny.config, length)
        # calflops also counts norms, activations and rotary; matmuls dominate.
        assert est.per_token == pytest.approx(analytical, rel=0.05)
        assert est.per_token == pytest.approx(
            2 * sum(p.numel() for p in tiny.parameters()), rel=0.5
        )


def test_calflops_counts_eager_models_like_sdpa_and_restores_them(tiny) -> None:
    pytest.importorskip("calflops")
    eager = _tiny(attn="eager")
    est = estimate_flops_per_token(eager, eager.config, 64)
    assert est.method == "calflops"
    assert eager.config._attn_implementation == "eager"
    assert est.per_token == pytest.approx(estimate_flops_per_token(tiny, tiny.config, 64).per_token)


def test_never_raises() -> None:
    est = estimate_flops_per_token(None, None, 128)
    assert est.method == "unavailable" and est.per_token is None

    class Broken:
        config = None

        def parameters(self):
            raise RuntimeError("no parameters here")

    est = estimate_flops_per_token(Broken(), None, 128)
    assert est.method == "unavailable" and est.per_token is None
    assert "no parameters here" in est.note
    assert estimate_flops_per_token(None, None, 0).method == "unavailable"


def test_untied_head_on_the_meta_device_is_not_counted_as_tied() -> None:
    """Meta tensors share data_ptr() 0; an untied head must still count once (as a matmul)."""
    torch = pytest.importorskip("torch")
    from harness.window.flops import matmul_params

    class Toy(torch.nn.Module):
        def __init__(self, tied: bool) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(100, 8)
            self.body = torch.nn.Linear(8, 8, bias=False)
            self.head = torch.nn.Linear(8, 100, bias=False)
            if tied:
                self.head.weight = self.embed.weight

        def get_input_embeddings(self):
            return self.embed

        def get_output_embeddings(self):
            return self.head

    with torch.device("meta"):
        untied, tied = Toy(False), Toy(True)
    assert matmul_params(untied) == 64 + 800  # body + head; the embedding lookup is no matmul
    assert matmul_params(tied) == 64 + 800  # the shared matrix counted once, as the head
