"""Synthetic workload: seeded random prompts of exactly ``input_tokens`` token ids.

Ids are drawn from the backend's ordinary vocabulary and fed to the model as ids (no text round
trip, which could merge or split tokens), so every prompt has exactly the requested length.
The same seed and vocabulary always give the same prompts.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, Prompt
from harness.workloads import WorkloadError


def make_prompts(vocab: list[int], num_prompts: int, input_tokens: int, seed: int) -> list[Prompt]:
    """``num_prompts`` prompts of ``input_tokens`` ids drawn from ``vocab`` by ``Random(seed)``."""
    if not vocab:
        raise WorkloadError("synthetic workload: the backend's vocabulary is empty")
    if num_prompts < 1 or input_tokens < 1:
        raise WorkloadError("synthetic workload: num_prompts and input_tokens must be >= 1")
    rng = random.Random(seed)
    return [
        Prompt(token_ids=[rng.choice(vocab) for _ in range(input_tokens)], task_id=f"synthetic/{i}")
        for i in range(num_prompts)
    ]


def build(workload: dict[str, Any], backend: Backend, base_dir: Path | None = None) -> list[Prompt]:
    """Synthetic prompts for ``workload`` (defaults as in the suite schema)."""
    return make_prompts(
        backend.vocab_token_ids(),
        num_prompts=int(workload.get("num_prompts", 8)),
        input_tokens=int(workload.get("input_tokens", 32)),
        seed=int(workload.get("seed", 0)),
    )
