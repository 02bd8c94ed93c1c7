"""The gpu tier runs only where an NVIDIA GPU, its driver and CUDA torch exist (`pytest -m gpu` on a
GPU machine); elsewhere every test here is skipped with the reason."""

from __future__ import annotations

import pytest


def _gpu_missing() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch"
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception as exc:  # the real library's errors, whatever they are
        return f"NVML unavailable: {exc}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _gpu_missing()
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.gpu)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"gpu tier: {reason}"))
