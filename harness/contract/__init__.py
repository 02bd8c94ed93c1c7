"""The contract between controller and harness: the request and result shapes, io files,
schemas, exit codes, load groups, the registry, metric definitions and the timeline file format.

The controller (``lembench``) reaches the harness only through this package: its modules, and the
few names below that live in other rooms but are part of what a suite or the host may ask
(model references, bundled architectures, the environment self test, energy methods). Those are
resolved lazily, so importing the contract never imports a backend, a meter or an engine.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Names of other rooms the controller may use: name -> "module:attribute".
_DOOR: dict[str, str] = {
    "ALIASES": "harness.models.refs:ALIASES",
    "HF_ID": "harness.models.refs:HF_ID",
    "ModelRefError": "harness.models.refs:ModelRefError",
    "resolve_ref": "harness.models.refs:resolve_ref",
    "bundled_model_ids": "harness.models.dummy_weights:bundled_model_ids",
    "bundled_config": "harness.models.dummy_weights:bundled_config",
    "check_codecarbon": "harness.hardware.selftest:check_codecarbon",
    "check_gpus": "harness.hardware.selftest:check_gpus",
    "check_rapl": "harness.hardware.selftest:check_rapl",
    "meter_plan": "harness.hardware.selftest:meter_plan",
    "METHODS": "harness.meters.base:METHODS",
    "WorkloadError": "harness.workloads:WorkloadError",
    "read_jsonl_prompts": "harness.workloads.jsonl:read_texts",
}

__all__ = sorted(_DOOR)


def __getattr__(name: str) -> Any:
    target = _DOOR.get(name)
    if target is None:
        raise AttributeError(f"module 'harness.contract' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
