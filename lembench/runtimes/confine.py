"""What a harness container may do: the least it needs, decided per launch from its request.

- **Files**: the io folder (read-write) and exactly the files the request names (model, tokenizer,
  workload files: read-only), never the suite's whole folder (a suite in $HOME would expose all of
  $HOME). Of lembench's cache only the parts the harness writes: ``gguf/`` for backends that
  convert or hash GGUF files (read-write for pytorch, which converts; read-only for llama.cpp,
  which only memoises hashes and tolerates a read-only memo), ``baselines/`` when idle baselines
  are cached.
- **Privileges**: every capability dropped, ``no-new-privileges``, a read-only root filesystem
  with tmpfs for /tmp and the image's HOME (library caches), limits on processes and memory.
- **User**: the invoking user's uid:gid; on a rootless engine 0:0 (which *is* the invoking user
  there). A controller running as root never starts a root container: it uses the user who ran
  sudo (SUDO_UID), else ``nobody``, and hands that user the io folder and writable cache parts.
- **Network**: none, unless the backend needs one (an OpenAI-compatible server's address, a model
  downloaded from the Hugging Face Hub) *and* the suite asks for it (``network: host``); a launch
  that needs one the suite did not ask for fails with a one-line reason naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Processes and threads of one container (torch and engines start many threads; a fork bomb
#: stops here).
PIDS_LIMIT = 16384
#: Share of the host's memory a container may use: the host keeps room to stay responsive.
MEMORY_FRACTION = 0.9
#: The unprivileged account a root controller runs containers as when no sudo user is known.
NOBODY = (65534, 65534)
#: Backends that read GGUF through lembench's cache, and whether they write to it.
GGUF_CACHE_WRITERS = {"pytorch": "rw", "llamacpp": "ro"}


class NetworkRefused(ValueError):
    """The backend needs a network the suite did not ask for; the message names the setting."""


@dataclass(frozen=True)
class ContainerUser:
    """Who the container runs as, and whose the writable mounts must be (None: already ours)."""

    spec: str  # "uid:gid" for the engine
    chown_to: tuple[int, int] | None


def network_need(request: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """Why the launch needs a network (one phrase), or None."""
    for exp in request.get("experiments") or []:
        config = exp.get("config") or {}
        if config.get("backend") == "openai":
            url = (config.get("openai") or {}).get("base_url")
            return f"the openai backend talks to its server ({url})"
    model = request.get("model") or {}
    offline = environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
    if model.get("kind") == "hf" and not offline:
        return f"model {model.get('ref')} is downloaded from the Hugging Face Hub"
    return None


def network_mode(
    settings: Mapping[str, Any], request: Mapping[str, Any], environ: Mapping[str, str]
) -> str:
    """``host`` when the suite asks for a network (``network: host``), else ``none``;
    NetworkRefused when the launch needs one the suite did not ask for."""
    if settings.get("network") == "host":
        return "host"
    need = network_need(request, environ)
    if need is not None:
        raise NetworkRefused(
            f"{need}, but its container has no network: add `network: host` to the suite "
            "(schema_version: 4) to allow one"
        )
    return "none"


def cache_mounts(request: Mapping[str, Any], cache: Path) -> dict[Path, str]:
    """The parts of lembench's cache (``cache``) the harness needs, with their modes."""
    mounts: dict[Path, str] = {}
    model = request.get("model") or {}
    backends = {(e.get("config") or {}).get("backend") for e in request.get("experiments") or []}
    if model.get("kind") in ("alias", "gguf"):
        for backend in sorted(b for b in backends if b in GGUF_CACHE_WRITERS):
            mode = GGUF_CACHE_WRITERS[backend]
            if mounts.get(cache / "gguf") != "rw":
                mounts[cache / "gguf"] = mode
    measurement = request.get("measurement") or {}
    if measurement.get("idle_baseline_s", 0) > 0 and measurement.get("baseline_cache_s", 0) > 0:
        mounts[cache / "baselines"] = "rw"
    return mounts


def container_user(rootless: bool, environ: Mapping[str, str]) -> ContainerUser:
    """Who runs the harness (see the module doc)."""
    if rootless:
        return ContainerUser("0:0", None)
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        return ContainerUser(f"{uid}:{gid}", None)
    try:
        sudo = (int(environ["SUDO_UID"]), int(environ["SUDO_GID"]))
    except (KeyError, ValueError):
        sudo = NOBODY
    target = sudo if sudo[0] != 0 else NOBODY
    return ContainerUser(f"{target[0]}:{target[1]}", target)


def hand_over(io_dir: Path, folders: list[Path], owner: tuple[int, int]) -> None:
    """Give ``owner`` the io folder (with what is in it) and the writable cache ``folders``
    (themselves only: new entries are created beside the existing ones), so the unprivileged
    harness of a root controller can write there."""
    for path in [io_dir, *io_dir.rglob("*")]:
        os.chown(path, *owner, follow_symlinks=False)
    for folder in folders:
        os.chown(folder, *owner)


def memory_limit() -> int | None:
    """Bytes a container may use (MEMORY_FRACTION of the host's), None when unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None
    return int(total * MEMORY_FRACTION) if total > 0 else None


def hardening(home: str) -> dict[str, Any]:
    """The confinement part of a container spec (``client.containers.run`` keyword arguments):
    https://docker-py.readthedocs.io/en/stable/containers.html (cap_drop, security_opt,
    read_only, tmpfs, pids_limit, mem_limit)."""
    tmpfs = {"/tmp": "rw,nosuid,nodev"}
    if home and home != "/tmp":
        tmpfs[home] = "rw,nosuid,nodev"  # libraries' caches under HOME: the root fs is read-only
    spec: dict[str, Any] = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": tmpfs,
        "pids_limit": PIDS_LIMIT,
    }
    limit = memory_limit()
    if limit is not None:
        spec["mem_limit"] = limit
    return spec
