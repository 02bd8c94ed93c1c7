"""Lazy registries of backends and meters: name -> "module:Class", imported only when used.

Built-in entries live in the tables below; third parties add their own through the entry-point
groups ``lembench.backends`` and ``lembench.meters``. Listing names never imports an engine, so the
controller can check a suite's ``backend:`` without torch, vLLM or TensorRT-LLM installed.
"""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

BUILTIN_BACKENDS: dict[str, str] = {
    "pytorch": "harness.backends.pytorch:PyTorchBackend",
    "llamacpp": "harness.backends.llamacpp:LlamaCppBackend",
    "openai": "harness.backends.openai_compat:OpenAIBackend",
    "vllm": "harness.backends.vllm:VllmBackend",
    "tensorrt-llm": "harness.backends.tensorrt_llm:TensorRTLLMBackend",
}

# The experiment key holding each built-in backend's engine options (suite.schema.json).
OPTION_BLOCKS: dict[str, str] = {
    "pytorch": "pytorch",
    "llamacpp": "llamacpp",
    "openai": "openai",
    "vllm": "vllm",
    "tensorrt-llm": "tensorrt",
}

# Backends that serve requests as they arrive (Backend.supports_traffic), so a `traffic:` block
# applies. Kept here as data so the controller can check suites without importing engines.
TRAFFIC_BACKENDS: frozenset[str] = frozenset({"openai", "vllm", "tensorrt-llm"})

# Backends that can build a model with random weights from its config (`weights: dummy`).
DUMMY_WEIGHTS_BACKENDS: frozenset[str] = frozenset({"pytorch", "vllm", "tensorrt-llm"})

# Backends whose code is written against the engine's documented API and unit-tested against a
# fake of it, but that no lembench run has exercised on real hardware yet (doctor and docs say so).
NOT_YET_RUN_ON_HARDWARE: frozenset[str] = frozenset({"vllm", "tensorrt-llm"})

BUILTIN_METERS: dict[str, str] = {
    "nvml": "harness.meters.nvml:NvmlMeter",
    "rapl": "harness.meters.rapl:RaplMeter",
    "codecarbon": "harness.meters.codecarbon:CodecarbonMeter",
}

_GROUPS = {
    "backend": ("lembench.backends", BUILTIN_BACKENDS),
    "meter": ("lembench.meters", BUILTIN_METERS),
}


class UnknownNameError(LookupError):
    """An unknown backend or meter name; the message lists close matches and what is allowed."""


@cache
def _table(kind: str) -> dict[str, str]:
    group, builtin = _GROUPS[kind]
    table = dict(builtin)
    for ep in entry_points(group=group):
        table.setdefault(ep.name, ep.value)
    return table


def names(kind: str = "backend") -> list[str]:
    """Registered names of ``kind`` ("backend" or "meter"), sorted."""
    return sorted(_table(kind))


def suggest(name: str, allowed: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest allowed name, or ''."""
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_name(name: str, kind: str = "backend") -> None:
    """Raise UnknownNameError with a 'did you mean' hint if ``name`` is not registered."""
    allowed = names(kind)
    if name not in allowed:
        raise UnknownNameError(
            f"unknown {kind} {name!r}{suggest(name, allowed)} (allowed: {', '.join(allowed)})"
        )


def option_block(backend: str) -> str:
    """The experiment key of ``backend``'s engine options (its own name for third parties)."""
    return OPTION_BLOCKS.get(backend, backend)


def load(name: str, kind: str = "backend") -> Any:
    """Import and return the class registered as ``name``. Import errors propagate unchanged so the
    caller can report the missing library (ImportError) as "backend unavailable"."""
    check_name(name, kind)
    module_name, _, attr = _table(kind)[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)
