"""Which GPUs an experiment runs on: the ones measured, and the ones left out.

Two narrowing steps, both recorded as notes:

1. What the process can see. The vendor's visibility variables (``GPUs.visible_env``):
   ``NVIDIA_VISIBLE_DEVICES`` (the container runtime's: ``all``, ``none``/``void``, indices or
   ``GPU-`` UUIDs) then ``CUDA_VISIBLE_DEVICES`` for NVIDIA; ``ROCR_VISIBLE_DEVICES`` then
   ``HIP_VISIBLE_DEVICES`` (or ``CUDA_VISIBLE_DEVICES``, which HIP honours when its own is unset)
   for AMD. Entries are indices, UUIDs or unique UUID prefixes (as CUDA allows) or ``MIG-`` UUIDs
   (mapped to their physical GPU: NVML has no per-instance energy). As CUDA does, the first entry
   that matches nothing ends the list.
2. What the experiment uses of those (``experiment_positions``): ``device: cuda:N`` -> the Nth
   visible GPU; vLLM / TensorRT-LLM -> the first tensor x pipeline parallel size GPUs; PyTorch
   without ``device_map`` -> the first; otherwise (``device_map``, llama.cpp splitting layers,
   an OpenAI-compatible server elsewhere) every visible GPU.

Every other GPU the library sees is ``outside``: not measured, but watched for load.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.hardware.gpu.base import GPU, GPUs, GPUUnavailable

#: An entry naming a device by (a prefix of) its UUID: ``GPU-...``, ``MIG-...`` or bare hex.
_UUID_LIKE = re.compile(r"^(GPU-|MIG-)[0-9A-Za-z/-]+$|^[0-9a-fA-F-]{8,}$")


@dataclass
class Scope:
    """The measured GPUs (in the experiment's order), those outside, and how they were chosen."""

    measured: list[GPU]
    outside: list[GPU]
    notes: list[str] = field(default_factory=list)
    #: The settings that chose them ({"CUDA_VISIBLE_DEVICES": "1", "experiment": "cuda:0"}).
    chosen_by: dict[str, str] = field(default_factory=dict)


def _resolve(tok: str, candidates: list[GPU], gpus: GPUs) -> GPU | None:
    if tok.lstrip("-").isdigit():
        i = int(tok)
        return candidates[i] if 0 <= i < len(candidates) else None
    if tok.startswith("MIG-"):
        parent = gpus.mig_parent_uuid(tok)
        if parent is None:
            return None
        tok = parent
    # ROCR_VISIBLE_DEVICES writes AMD UUIDs as "GPU-<hex>"; amdsmi reports them bare.
    bare = tok[4:] if tok.startswith("GPU-") else tok
    for key in (tok, bare):
        exact = [g for g in candidates if g.uuid == key]
        if exact:
            return exact[0]
    prefixed = [g for g in candidates if g.uuid.startswith(tok) or g.uuid.startswith(bare)]
    return prefixed[0] if len(prefixed) == 1 else None


def _narrow(var: str, raw: str, candidates: list[GPU], gpus: GPUs, notes: list[str]) -> list[GPU]:
    value = raw.strip()
    if var == "NVIDIA_VISIBLE_DEVICES":
        if value in ("", "all"):
            return candidates
        if value in ("none", "void"):
            raise GPUUnavailable(f"{var}={raw!r}: no GPU is mounted")
    tokens = [t.strip() for t in value.split(",")]
    if not any(tokens):
        raise GPUUnavailable(f"{var} is set but empty: no GPU is visible")
    if var == "NVIDIA_VISIBLE_DEVICES" and len(set(tokens)) == len(candidates):
        # Inside a container the library sees exactly the mounted GPUs, renumbered from 0.
        return candidates
    if not all(t.lstrip("-").isdigit() or _UUID_LIKE.match(t) for t in tokens):
        notes.append(f"{var}={raw!r} not understood: it is not applied")
        return candidates
    selected: list[GPU] = []
    for tok in tokens:
        gpu = _resolve(tok, candidates, gpus)
        if gpu is None:
            notes.append(
                f"{var} entry {tok!r} matches no GPU; it and later entries are ignored, "
                "as the runtime does"
            )
            break
        if tok.startswith("MIG-"):
            notes.append(
                f"{var} names MIG instance {tok}: measured is its physical GPU {gpu.uuid} "
                "(MIG instances have no energy counter of their own)"
            )
        if gpu not in selected:
            selected.append(gpu)
    if not selected:
        raise GPUUnavailable(f"{var}={raw!r} selects no GPU that {gpus.vendor} sees")
    if (
        var == "CUDA_VISIBLE_DEVICES"
        and gpus.vendor == "nvidia"
        and len(candidates) > 1
        and any(t.isdigit() for t in tokens)
        and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID"
    ):
        # NVML numbers GPUs in PCI bus order, CUDA by default fastest first.
        notes.append(
            "CUDA_VISIBLE_DEVICES indices taken in NVML (PCI bus) order; "
            "set CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA agrees"
        )
    return selected


def visible(
    gpus: GPUs, env: Mapping[str, str] | None = None
) -> tuple[list[GPU], list[str], dict[str, str]]:
    """The GPUs this process may use after the vendor's visibility variables, with notes and the
    variables applied. GPUUnavailable when none is left."""
    env = os.environ if env is None else env
    candidates = list(gpus.gpus)
    notes: list[str] = []
    chosen: dict[str, str] = {}
    for group in gpus.visible_env:
        var = next((v for v in group if v in env), None)
        if var is None:
            continue
        chosen[var] = env[var]
        candidates = _narrow(var, env[var], candidates, gpus, notes)
    if not candidates:
        raise GPUUnavailable("no GPU is visible")
    return candidates, notes, chosen


def experiment_positions(config: Mapping[str, Any] | None) -> tuple[list[int] | None, str | None]:
    """Positions (in the visible list) of the GPUs an experiment config runs on, and why.

    (None, reason) means every visible GPU; (None, None) when nothing narrows it."""
    if not config:
        return None, None
    device = str(config.get("device", "auto"))
    backend = config.get("backend")
    if device.startswith("cuda:"):
        n = int(device.split(":", 1)[1])
        return [n], f"device {device}"
    if device == "cpu":
        return None, None
    if backend == "vllm":
        opts = config.get("vllm") or {}
        n = int(opts.get("tensor_parallel_size", 1)) * int(opts.get("pipeline_parallel_size", 1))
        return list(range(n)), f"vllm tensor x pipeline parallel = {n}"
    if backend == "tensorrt-llm":
        opts = config.get("tensorrt") or {}
        n = int(opts.get("tp_size", 1)) * int(opts.get("pp_size", 1))
        return list(range(n)), f"tensorrt tp_size x pp_size = {n}"
    if backend == "pytorch":
        if (config.get("pytorch") or {}).get("device_map"):
            return None, "pytorch device_map shards over every visible GPU"
        return [0], "pytorch on one GPU (the first visible)"
    return None, None


def select(
    gpus: GPUs,
    config: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Scope:
    """The experiment's GPUs among those ``gpus`` sees (see the module docstring)."""
    candidates, notes, chosen = visible(gpus, env)
    positions, why = experiment_positions(config)
    measured = candidates
    if positions is not None:
        missing = [p for p in positions if p >= len(candidates)]
        if missing:
            raise GPUUnavailable(
                f"the experiment uses {why} but only {len(candidates)} GPU(s) are visible"
            )
        measured = [candidates[p] for p in positions]
    if why:
        chosen["experiment"] = why
    outside = [g for g in gpus.gpus if g not in measured]
    return Scope(measured, outside, notes, chosen)
