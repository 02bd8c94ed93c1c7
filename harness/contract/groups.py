"""Load groups: experiments that can share one model load.

Two experiments share a load group when everything that shapes the loaded model is equal: backend,
model, precision, device, ``weights``, ``threads`` (llama.cpp fixes its thread count when the
context is created) and the backend's own option block (``pytorch:``, ``vllm:``, ``tensorrt:`` ...).
The controller groups by it; the harness checks that a request holds one group only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def load_key(config: dict[str, Any]) -> dict[str, Any]:
    """The part of an expanded experiment config that determines the model load."""
    from harness.contract.registry import option_block

    backend = config["backend"]
    key = {
        "backend": backend,
        "model": config["model"],
        "precision": config["precision"],
        "device": config["device"],
        "options": config.get(option_block(backend)),
    }
    for optional in ("weights", "threads"):  # only when given, so older suites keep their ids
        if optional in config:
            key[optional] = config[optional]
    return key


def load_group_id(config: dict[str, Any]) -> str:
    """12 hex chars identifying the load group of ``config``."""
    text = json.dumps(load_key(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
