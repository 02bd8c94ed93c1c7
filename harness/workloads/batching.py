"""Batching strategies: how a workload's prompts are grouped into the batches a backend runs.

- ``static``: workload order, ``batch_size`` prompts per batch (the last may be short).
- ``sorted_static``: sorted by prompt length (longest first, ties in workload order), then static:
  similar lengths share a batch, so less padding is computed.
- ``dynamic``: workload order; a batch takes prompts while the token budget ``max_tokens``
  (prompt + output tokens of every member) and ``batch_size`` allow it.
- ``sorted_dynamic``: sorted as above, then dynamic.

A prompt whose own tokens exceed the budget still runs, alone in its batch (never dropped).
"""

from __future__ import annotations

from typing import Any

from harness.backends.base import Prompt

STRATEGIES = ("static", "sorted_static", "dynamic", "sorted_dynamic")


def make_batches(
    prompts: list[Prompt],
    batch_size: int,
    output_tokens: int,
    batching: dict[str, Any] | None = None,
) -> list[list[Prompt]]:
    """Group ``prompts`` into batches per ``batching`` (suite.schema.json#/$defs/batching)."""
    strategy = (batching or {}).get("strategy", "static")
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown batching strategy {strategy!r} (allowed: {', '.join(STRATEGIES)})"
        )
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    ordered = list(prompts)
    if strategy.startswith("sorted_"):
        ordered.sort(key=lambda p: -len(p.token_ids))  # stable: ties keep workload order
    if strategy.endswith("static"):
        return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    budget = int(batching["max_tokens"])  # type: ignore[index]  # required by the schema
    batches: list[list[Prompt]] = []
    current: list[Prompt] = []
    used = 0
    for prompt in ordered:
        cost = len(prompt.token_ids) + output_tokens
        if current and (used + cost > budget or len(current) >= batch_size):
            batches.append(current)
            current, used = [], 0
        current.append(prompt)
        used += cost
    if current:
        batches.append(current)
    return batches
