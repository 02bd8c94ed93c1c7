"""Plugins keep working: the import paths third-party backends and meters were written against
stay importable (re-exports for one release) and name the same classes as their new homes."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: old path -> the class's home now.
OLD_PATHS = {
    "harness.backends.base:Backend": "harness.backends.base:Backend",
    "harness.backends.base:Prompt": "harness.backends.base:Prompt",
    "harness.workloads:Prompt": "harness.backends.base:Prompt",
    "harness.meters.base:Meter": "harness.meters.base:Meter",
}


def _get(path: str) -> object:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize(("old", "home"), sorted(OLD_PATHS.items()))
def test_old_import_paths_name_the_same_class(old: str, home: str) -> None:
    assert _get(old) is _get(home)
    assert isinstance(_get(old), type)


def test_a_plugin_written_against_the_old_paths_imports_in_a_fresh_process() -> None:
    """In a fresh interpreter (no earlier import made the names exist by accident)."""
    code = (
        "from harness.backends.base import Backend, Generation, LoadInfo\n"
        "from harness.meters.base import Meter\n"
        "from harness.workloads import Prompt\n"
        "class Plugin(Backend):\n"
        "    name = 'plugin'\n"
        "print(Plugin.name, Prompt(token_ids=[1]).token_ids, Meter.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["plugin", "[1]", "Meter"]
