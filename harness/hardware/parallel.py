"""Which GPUs a model runs on, for the MFU/MBU peaks.

Tensor parallelism (TP) splits every layer over ``tp`` GPUs and pipeline parallelism (PP) the
layers over ``pp`` stages: the model occupies ``tp x pp`` GPUs. Which ones is decided once, by the
experiment's GPU scope (``harness.hardware.gpu.scope.experiment_positions``: ``device: cuda:N``,
vLLM's and TensorRT-LLM's TP x PP, PyTorch's first GPU or its ``device_map``); the environment's
``gpus`` list is that scope. Peaks are per device times their count
(``harness.hardware.peaks.utilisation``).
"""

from __future__ import annotations

from typing import Any


def devices_used(device: str | None, scoped_gpus: list[dict[str, Any]]) -> list[str]:
    """NVML names of the GPUs the model runs on; [] on CPU. ``scoped_gpus``: the environment's
    GPU list (the experiment's own GPUs, in order); ``device``: what the backend loaded onto."""
    if not device or not device.startswith("cuda"):
        return []
    return [g["name"] for g in scoped_gpus]
