"""JSONL workload: one JSON object per line, the prompt text in ``field`` (default "prompt").

Blank lines are skipped; line numbers in errors are the file's own (1-based). A line may carry an
``id`` or ``task_id`` string, kept as the prompt's task id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, Prompt
from harness.workloads import WorkloadError


def read_texts(path: Path, field: str, num_prompts: int | None) -> list[tuple[str, str | None]]:
    """(text, task_id) of the first ``num_prompts`` records of ``path`` (all when None)."""
    records: list[tuple[str, str | None]] = []
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below; bytes for line numbers
    except OSError as exc:
        raise WorkloadError(f"jsonl workload: cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if num_prompts is not None and len(records) >= num_prompts:
                break
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise WorkloadError(f"{path}:{lineno}: not UTF-8 text ({exc.reason})") from exc
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise WorkloadError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
            if not isinstance(obj, dict):
                raise WorkloadError(f"{path}:{lineno}: expected a JSON object")
            text = obj.get(field)
            if not isinstance(text, str):
                what = "missing" if field not in obj else "not a string"
                raise WorkloadError(f"{path}:{lineno}: field {field!r} is {what}")
            task_id = obj.get("task_id", obj.get("id"))
            records.append((text, str(task_id) if task_id is not None else f"{path.name}:{lineno}"))
    if not records:
        raise WorkloadError(f"{path}: no prompts (file is empty)")
    if num_prompts is not None and len(records) < num_prompts:
        raise WorkloadError(f"{path}: num_prompts={num_prompts} but the file has {len(records)}")
    return records


def build(workload: dict[str, Any], backend: Backend, base_dir: Path | None = None) -> list[Prompt]:
    """Prompts from the JSONL file ``workload["path"]`` (relative to ``base_dir``)."""
    if not workload.get("path"):
        raise WorkloadError("jsonl workload: 'path' is required")
    path = Path(workload["path"]).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    field = workload.get("field") or "prompt"
    num = workload.get("num_prompts")
    prompts = []
    for text, task_id in read_texts(path, field, int(num) if num is not None else None):
        ids = backend.encode(text)
        if not ids:
            raise WorkloadError(f"{path}: prompt {task_id} encodes to no tokens")
        prompts.append(Prompt(token_ids=ids, text=text, task_id=task_id))
    return prompts
