"""Which GPUs a model runs on: the device a backend loaded onto and its parallel group.

Tensor parallelism (TP) splits every layer over ``tp`` GPUs and pipeline parallelism (PP) the
layers over ``pp`` stages: the model occupies ``tp x pp`` GPUs, numbered from the one its device
names (``cuda:N``; ``cuda`` is the first visible). MFU/MBU peaks are per device times this count
(``harness.hardware.peaks.utilisation``).
"""

from __future__ import annotations

from typing import Any

#: Backend -> (config block, tensor-parallel key, pipeline-parallel key), as in the suite schema.
PARALLEL_KEYS: dict[str, tuple[str, str, str]] = {
    "vllm": ("vllm", "tensor_parallel_size", "pipeline_parallel_size"),
    "tensorrt-llm": ("tensorrt", "tp_size", "pp_size"),
}


def parallel_size(config: dict[str, Any]) -> int:
    """GPUs one model instance occupies: tensor x pipeline parallel size (1 when not set)."""
    keys = PARALLEL_KEYS.get(str(config.get("backend", "")))
    if keys is None:
        return 1
    block = config.get(keys[0]) or {}
    tp = int(block.get(keys[1]) or 1)
    pp = int(block.get(keys[2]) or 1)
    return max(tp, 1) * max(pp, 1)


def devices_used(
    device: str | None, gpus: list[dict[str, Any]], config: dict[str, Any]
) -> list[str]:
    """NVML names of the GPUs the model runs on; [] on CPU. ``gpus``: the environment's GPU list
    (visible devices, in index order); ``device``: what the backend loaded onto."""
    if not device or not device.startswith("cuda"):
        return []
    first = int(device.split(":", 1)[1]) if ":" in device else 0
    chosen = gpus[first : first + parallel_size(config)]
    return [g["name"] for g in chosen]
