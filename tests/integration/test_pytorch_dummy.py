"""``weights: dummy`` end to end on CPU: the real Llama-3.2-1B architecture (1.24e9 parameters)
with seeded random weights, built without any download, generating exact-length outputs.

Building the model initialises 1.24e9 random values (~10-25 s on two shared cores per precision);
the workload stays tiny (two prompts of 8 tokens, 3 output tokens).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from harness.backends.base import Sampling
from harness.backends.pytorch import PyTorchBackend
from harness.workloads import build_prompts

pytestmark = pytest.mark.integration
REF = {"kind": "hf", "ref": "meta-llama/Llama-3.2-1B", "gguf_file": None, "revision": None,
       "tokenizer": None}  # fmt: skip


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def loaded(request):
    config = {"precision": request.param, "device": "cpu", "weights": "dummy", "pytorch": {}}
    backend = PyTorchBackend(dict(REF), config)
    info = backend.load()
    yield request.param, backend, info
    backend.unload()


def test_builds_the_real_architecture(loaded) -> None:
    precision, _, info = loaded
    assert info.dtype == {"fp32": "float32", "bf16": "bfloat16"}[precision]
    assert info.model["params"] == 1_235_814_400 and info.model["weights"] == "dummy"
    assert info.model["dummy"]["seed"] == 0 and info.model["dummy"]["route"] == "from_config"
    assert info.model["engine_args"]["dtype"] == info.dtype


def test_exact_batch_from_a_synthetic_workload(loaded) -> None:
    _, backend, _ = loaded
    workload = {"kind": "synthetic", "num_prompts": 2, "input_tokens": 8, "seed": 0}
    prompts = build_prompts(workload, backend, None)
    assert not {128000, 128001} & {t for p in prompts for t in p.token_ids}
    gens = backend.generate(prompts, max_new_tokens=3, exact=True)
    for g in gens:
        assert (g.tokens_in, g.tokens_out, len(g.token_times)) == (8, 3, 3)
        assert g.t_start < g.t_first_token <= g.t_end and g.text is None
    sampled = backend.generate(prompts[:1], 3, exact=False, sampling=Sampling(do_sample=True))
    assert 1 <= sampled[0].tokens_out <= 3
