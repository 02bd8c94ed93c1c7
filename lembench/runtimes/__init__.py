"""Runtimes launch one harness process per load group and cycle: ``local`` (a subprocess of the
controller) or ``docker`` (a container of the backend's image on a Docker-compatible engine).

``runtime: auto`` (the default) picks docker when an engine is reachable and the image of every
backend of the suite exists for this lembench version, else local, and says which and why in one
line.

``slurm`` is not one of these per-launch runtimes: it submits all launches at once as job arrays
and each array task runs one of the above on its node (lembench.runtimes.slurm, docs/slurm.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lembench.runtimes.base import LaunchOutcome, Runtime
from lembench.runtimes.local import LocalRuntime


def select_runtime(
    settings: dict[str, Any],
    override: str | None = None,
    backends: Iterable[str] | None = None,
) -> tuple[Runtime, str | None]:
    """The runtime for a suite's ``settings`` (or ``override`` from the command line), and a
    one-line notice when the choice was automatic.

    ``backends``: the suite's backend names, whose images ``auto`` looks for (default: pytorch,
    the only backend so far). ``docker`` chosen explicitly is returned without probing: each
    launch then fails with the reason (engine, image) and the suite goes on.
    """
    name = override or settings.get("runtime") or "auto"
    if name == "local":
        return LocalRuntime(), None
    from lembench.runtimes.docker import DockerRuntime

    if name == "docker":
        return DockerRuntime(settings), None
    return _auto(settings, sorted(set(backends or ("pytorch",))))


def _auto(settings: dict[str, Any], backends: list[str]) -> tuple[Runtime, str]:
    from harness import __version__
    from lembench.imagedefs import host_has_nvidia_gpu
    from lembench.runtimes.docker import DockerRuntime
    from lembench.runtimes.engine import (
        PROBE_TIMEOUT_S,
        EngineError,
        choose_image,
        connect,
        get_image,
    )

    try:
        client, url = connect(timeout=PROBE_TIMEOUT_S)
    except EngineError as exc:
        reason = str(exc).split(";")[0]
        return LocalRuntime(), f"runtime auto: local ({reason})"
    gpu = host_has_nvidia_gpu()
    refs = []
    try:
        for backend in backends:
            choice = choose_image(backend, settings, gpu)
            get_image(client, choice, __version__)
            refs.append(choice.ref)
    except EngineError as exc:
        return LocalRuntime(), f"runtime auto: local (engine at {url} reachable, but {exc})"
    finally:
        client.close()
    return (
        DockerRuntime(settings, host_gpu=gpu),
        f"runtime auto: docker (engine at {url}, image {', '.join(refs)})",
    )


__all__ = ["LaunchOutcome", "LocalRuntime", "Runtime", "select_runtime"]
