"""What a run was measured on, reduced to the parts that change its numbers.

Runs of one experiment measured on different GPUs, drivers, CPUs or software versions are not
repetitions of one measurement, so aggregation must not average them silently. The environment
key is a short hash of these fields; the fields themselves say what differs.

Deliberately left out: the hostname (random per container), the Python version, core counts and
memory size (not expected to move energy per token on the same CPU model and GPUs).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def engine_packages() -> tuple[str, ...]:
    """Engine distributions whose version is part of the environment: each backend
    description's ``engine_distribution`` (torch and transformers are fields of their own; these
    are joined into ``engines`` when present)."""
    from harness.contract.registry import descriptions

    return tuple(d.engine_distribution for d in descriptions() if d.engine_distribution)


#: The fields of an environment, in display order.
ENV_FIELDS = (
    "gpus",
    "gpu_uuids",
    "gpu_driver",
    "gpu_power_limit_w",
    "cpu",
    "harness",
    "torch",
    "transformers",
    "engines",
)


def _joined(values: list[Any]) -> str | None:
    """Values joined with ', ' (None when there are none)."""
    parts = [str(v) for v in values if v is not None]
    return ", ".join(parts) if parts else None


def _version(result: dict[str, Any], package: str) -> str | None:
    """The version of ``package`` the backend reported, else the installed distribution's."""
    backend = (result.get("provenance") or {}).get("backend") or {}
    versions = backend.get("versions") or {}
    packages = (result.get("environment") or {}).get("packages") or {}
    return versions.get(package) or packages.get(package)


def environment_fields(result: dict[str, Any]) -> dict[str, str | None] | None:
    """The environment of a result as strings per field of ``ENV_FIELDS``; None when the result
    records no environment (a run that failed before the harness took its snapshot)."""
    env = result.get("environment")
    if not env:
        return None
    gpus = env.get("gpus") or []
    drivers = sorted({str(g.get("driver") or g.get("driver_version")) for g in gpus} - {"None"})
    engines = [f"{p} {v}" for p in engine_packages() if (v := _version(result, p))]
    return {
        "gpus": _joined([g.get("name") for g in gpus]),
        "gpu_uuids": _joined([g.get("uuid") for g in gpus]),
        "gpu_driver": _joined(drivers),
        "gpu_power_limit_w": _joined([g.get("power_limit_w") for g in gpus]),
        "cpu": (env.get("cpu") or {}).get("model"),
        "harness": (result.get("provenance") or {}).get("harness_version"),
        "torch": _version(result, "torch"),
        "transformers": _version(result, "transformers"),
        "engines": _joined(engines),
    }


def key_of(fields: dict[str, str | None] | None) -> str | None:
    """The environment key of ``environment_fields(...)``: 12 hex digits, stable across runs,
    machines and lembench versions (a hash of the canonical JSON of the fields)."""
    if fields is None:
        return None
    return _hashed(tuple(sorted(fields.items())))


@lru_cache(maxsize=1024)
def _hashed(items: tuple[tuple[str, str | None], ...]) -> str:
    # Cached: a store holds many runs of few environments (hashing is most of a row's cost).
    canonical = json.dumps(dict(items), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def environment_key(result: dict[str, Any]) -> str | None:
    """Short hash of what ``result`` was measured on (GPU names and UUIDs, driver, power limit,
    CPU model, harness/torch/transformers/engine versions); None without an environment."""
    return key_of(environment_fields(result))


def hardware_label(result: dict[str, Any]) -> str | None:
    """What the run computed on: the GPU names (``2x NVIDIA H100``), or the CPU model for runs on
    the CPU or on machines without GPUs."""
    env = result.get("environment")
    if not env:
        return None
    device = str(((result.get("provenance") or {}).get("model") or {}).get("device") or "")
    names = [str(g.get("name")) for g in env.get("gpus") or [] if g.get("name")]
    if names and not device.startswith("cpu"):
        distinct = sorted(set(names))
        if len(distinct) == 1:
            return names[0] if len(names) == 1 else f"{len(names)}x {names[0]}"
        return " + ".join(names)
    return (env.get("cpu") or {}).get("model")
