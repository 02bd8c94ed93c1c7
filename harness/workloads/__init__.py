"""Workloads: the prompts an experiment sends, built from its ``workload:`` config.

One module per kind (``synthetic``, ``humaneval``, ``jsonl``), each with
``build(workload, backend, base_dir) -> list[Prompt]``. Modules are imported only when used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Re-exported: plugins wrote ``from harness.workloads import Prompt``; kept for one release.
from harness.backends.base import Prompt

if TYPE_CHECKING:
    from harness.backends.base import Backend

__all__ = ["KINDS", "Prompt", "WorkloadError", "build_prompts"]

KINDS: dict[str, str] = {
    "synthetic": "harness.workloads.synthetic",
    "humaneval": "harness.workloads.humaneval",
    "jsonl": "harness.workloads.jsonl",
}


class WorkloadError(ValueError):
    """A workload that cannot be built; the one-line message says why (file, line, package)."""


def build_prompts(
    workload: dict[str, Any], backend: Backend, base_dir: Path | None = None
) -> list[Prompt]:
    """Prompts for ``workload`` (suite.schema.json#/$defs/workload), tokenized by ``backend``.

    ``base_dir`` is the folder relative paths are resolved against (the suite file's folder);
    the current directory when None. Raises WorkloadError.
    """
    kind = workload.get("kind")
    if kind not in KINDS:
        raise WorkloadError(f"unknown workload kind {kind!r} (allowed: {', '.join(sorted(KINDS))})")
    module = importlib.import_module(KINDS[kind])
    return module.build(workload, backend, base_dir)
