"""The GPU device layer: ``get_gpus()`` opens the first vendor library that sees a GPU.

A vendor is one module with a ``GPUs`` subclass (``base.py`` says what it must answer) and one
line in ``VENDORS``. Nothing here imports a vendor library until ``get_gpus`` is called.
"""

from __future__ import annotations

import importlib

from harness.hardware.gpu.base import (
    CLOCK_EVENT_REASONS,
    GPU,
    EnergyCounter,
    GPUError,
    GPUNotSupported,
    GPUProcess,
    GPUs,
    GPUUnavailable,
    throttle_reasons,
)

#: Vendor -> "module:GPUs class", tried in this order by ``get_gpus``.
VENDORS: dict[str, str] = {
    "nvidia": "harness.hardware.gpu.nvidia:NvidiaGPUs",
    "amd": "harness.hardware.gpu.amd:AmdGPUs",
}

__all__ = [
    "CLOCK_EVENT_REASONS",
    "GPU",
    "VENDORS",
    "EnergyCounter",
    "GPUError",
    "GPUNotSupported",
    "GPUProcess",
    "GPUUnavailable",
    "GPUs",
    "get_gpus",
    "open_vendor",
    "throttle_reasons",
]


def open_vendor(vendor: str) -> GPUs:
    """Open one vendor's library; GPUUnavailable (one line, why) when it cannot be used here."""
    module, _, attr = VENDORS[vendor].partition(":")
    return getattr(importlib.import_module(module), attr)()


def get_gpus(vendors: tuple[str, ...] | None = None) -> tuple[GPUs | None, dict[str, str]]:
    """The first of ``vendors`` (default: all, in ``VENDORS`` order) whose library sees a GPU,
    and per vendor tried without success, why. (None, reasons) on a machine without GPUs."""
    reasons: dict[str, str] = {}
    for vendor in vendors or tuple(VENDORS):
        try:
            return open_vendor(vendor), reasons
        except GPUUnavailable as exc:
            reasons[vendor] = str(exc)
    return None, reasons
