"""Decoding presets and batching strategies (shared by every backend)."""

from __future__ import annotations

import pytest

from harness.backends.base import GREEDY, Prompt
from harness.workloads.batching import make_batches
from harness.workloads.decoding import PRESETS, resolve


def test_absent_block_is_greedy() -> None:
    assert resolve(None) is GREEDY
    assert resolve({}) is GREEDY
    assert not GREEDY.do_sample


def test_presets_resolve_to_their_values() -> None:
    standard = resolve({"preset": "standard", "seed": 0})
    assert (standard.do_sample, standard.temperature, standard.top_p, standard.top_k) == (
        True,
        1.0,
        0.95,
        50,
    )
    factual = resolve({"preset": "factual", "seed": 3})
    assert (factual.temperature, factual.top_p, factual.top_k, factual.seed) == (0.3, 0.9, 10, 3)
    assert resolve({"preset": "creative"}).temperature == 1.2
    assert set(PRESETS) == {"deterministic", "standard", "creative", "factual"}


def test_explicit_fields_override_the_preset() -> None:
    s = resolve({"preset": "standard", "temperature": 0.7, "top_k": 0, "seed": 1})
    assert (s.preset, s.temperature, s.top_k, s.top_p, s.seed) == ("standard", 0.7, 0, 0.95, 1)


def test_temperature_zero_is_greedy_whatever_the_preset() -> None:
    s = resolve({"preset": "creative", "temperature": 0})
    assert not s.do_sample


def test_sampling_fields_on_the_deterministic_preset_ask_for_sampling() -> None:
    s = resolve({"preset": "deterministic", "temperature": 0.5})
    assert s.do_sample and s.temperature == 0.5
    assert not resolve({"preset": "deterministic", "seed": 4}).do_sample


def test_to_dict_round_trips() -> None:
    s = resolve({"preset": "standard", "seed": 9})
    assert s.to_dict()["seed"] == 9 and s.to_dict()["preset"] == "standard"


def _prompts(lengths: list[int]) -> list[Prompt]:
    return [Prompt(token_ids=[1] * n, task_id=str(i)) for i, n in enumerate(lengths)]


def _ids(batches: list[list[Prompt]]) -> list[list[str]]:
    return [[p.task_id or "" for p in b] for b in batches]


def test_static_keeps_order_and_size() -> None:
    batches = make_batches(_prompts([5, 1, 3, 2, 4]), 2, 8)
    assert _ids(batches) == [["0", "1"], ["2", "3"], ["4"]]


def test_sorted_static_sorts_longest_first_stably() -> None:
    batches = make_batches(_prompts([5, 1, 3, 3, 4]), 2, 8, {"strategy": "sorted_static"})
    assert _ids(batches) == [["0", "4"], ["2", "3"], ["1"]]


def test_dynamic_respects_budget_and_batch_size() -> None:
    # costs (prompt + 4 output tokens): 9, 5, 7, 6, 8; budget 14
    batches = make_batches(
        _prompts([5, 1, 3, 2, 4]), 3, 4, {"strategy": "dynamic", "max_tokens": 14}
    )
    assert _ids(batches) == [["0", "1"], ["2", "3"], ["4"]]
    for b in batches:
        assert sum(len(p.token_ids) + 4 for p in b) <= 14
    capped = make_batches(_prompts([1] * 5), 2, 1, {"strategy": "dynamic", "max_tokens": 100})
    assert [len(b) for b in capped] == [2, 2, 1]


def test_sorted_dynamic_packs_sorted_prompts() -> None:
    batches = make_batches(
        _prompts([1, 9, 2, 8]), 4, 0, {"strategy": "sorted_dynamic", "max_tokens": 10}
    )
    assert _ids(batches) == [["1"], ["3", "2"], ["0"]]


def test_an_oversized_prompt_runs_alone_never_dropped() -> None:
    batches = make_batches(_prompts([50, 1]), 4, 1, {"strategy": "dynamic", "max_tokens": 10})
    assert _ids(batches) == [["0"], ["1"]]


def test_bad_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown batching strategy"):
        make_batches(_prompts([1]), 1, 1, {"strategy": "random"})
