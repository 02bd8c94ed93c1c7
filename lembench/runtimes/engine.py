"""The container engine as the controller sees it, through the ``docker`` Python SDK: any
Docker-compatible engine (Docker, podman's API socket). Used by the docker runtime, ``lembench
images`` and ``lembench doctor``.

Where the engine is: ``DOCKER_HOST`` when set (with ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``,
as the docker CLI reads them); else the first socket that exists of Docker's
(/var/run/docker.sock), rootless podman's ($XDG_RUNTIME_DIR/podman/podman.sock) and rootful
podman's (/run/podman/podman.sock).

Every failure is a one-line ``EngineError`` that says what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lembench.imagedefs import (
    IMAGES,
    LABEL_IMAGE,
    LABEL_VERSION,
    image_for_backend,
    image_ref,
)

#: Seconds for API calls (pings, inspections); builds and waits pass their own.
API_TIMEOUT_S = 30
#: A ping that takes longer than this means "not reachable" for `runtime: auto`.
PROBE_TIMEOUT_S = 5

DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineError(RuntimeError):
    """The engine or an image is unusable; the message is one line with the fix."""


def docker_sdk() -> Any:
    """The ``docker`` package (imported here so the CLI starts fast without it)."""
    try:
        import docker
    except ImportError as exc:
        raise EngineError(
            "the docker Python SDK is not installed (pip install docker): "
            "container runtimes need it"
        ) from exc
    return docker


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception as one short line (SDK errors carry multi-line HTTP details)."""
    explanation = getattr(exc, "explanation", None)
    text = " ".join(str(explanation or exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def engine_url(environ: Mapping[str, str] | None = None) -> str:
    """The engine's address (see the module doc)."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"]
    candidates = [DEFAULT_SOCKET]
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(env["XDG_RUNTIME_DIR"], "podman", "podman.sock"))
    candidates.append("/run/podman/podman.sock")
    for path in candidates:
        if os.path.exists(path):
            return f"unix://{path}"
    return f"unix://{DEFAULT_SOCKET}"


def connect(
    environ: Mapping[str, str] | None = None, timeout: float = API_TIMEOUT_S
) -> tuple[Any, str]:
    """A client of the engine that answered a ping, and its address; EngineError otherwise."""
    env = dict(os.environ if environ is None else environ)
    url = engine_url(env)
    docker = docker_sdk()
    try:
        if env.get("DOCKER_HOST"):
            client = docker.from_env(environment=env, timeout=timeout)
        else:
            client = docker.DockerClient(base_url=url, timeout=timeout)
        client.ping()
    except Exception as exc:  # DockerException, requests' connection errors and timeouts
        raise EngineError(
            f"no container engine reachable at {url} ({_why(exc)}); start Docker or podman"
            " and set DOCKER_HOST if its socket is elsewhere (`lembench doctor` checks)"
        ) from None
    return client, url


def _why(exc: BaseException) -> str:
    """The usual connection failures in a few words; anything else as it is."""
    text = str(exc)
    for needle, why in (
        ("FileNotFoundError", "no socket there"),
        ("ConnectionRefusedError", "connection refused"),
        ("PermissionError", "permission denied: add yourself to the docker group, or use podman"),
        ("Read timed out", "no answer in time"),
    ):
        if needle in text:
            return why
    return one_line(exc)


def is_rootless(client: Any) -> bool:
    """Whether the engine runs rootless (its root is the calling user): Docker and podman list
    ``name=rootless`` in the info's SecurityOptions."""
    try:
        options = client.info().get("SecurityOptions") or []
    except Exception:
        return False
    return any("rootless" in str(o) for o in options)


def image_digest(image: Any) -> str:
    """The image's content digest: the registry manifest digest when it came from one (RepoDigests),
    else its id (the digest of its configuration, what a local build has)."""
    repo_digests = image.attrs.get("RepoDigests") or []
    for entry in repo_digests:
        if "@" in entry:
            return entry.split("@", 1)[1]
    return image.id


def image_size(image: Any) -> int | None:
    size = image.attrs.get("Size")
    return int(size) if isinstance(size, int | float) else None


@dataclass(frozen=True)
class ImageChoice:
    """Which image a backend runs in."""

    ref: str  # what to ask the engine for
    name: str | None  # lembench image name (cpu, pytorch, ...); None for a suite's own image


def choose_image(backend: str, settings: Mapping[str, Any], gpu: bool) -> ImageChoice:
    """The image for ``backend``: the suite's ``image:`` when set, else lembench's table."""
    if settings.get("image"):
        return ImageChoice(str(settings["image"]), None)
    name = image_for_backend(backend, gpu)
    if name is None:
        raise EngineError(
            f"no lembench image runs backend {backend!r} (images: {', '.join(IMAGES)}); "
            "set `image:` in the suite or use runtime: local"
        )
    return ImageChoice(image_ref(name), name)


def rebuild_hint(choice: ImageChoice, labels: Mapping[str, str] | None = None) -> str:
    """How to get a usable image: the lembench image it is (or was built FROM), rebuilt."""
    name = choice.name or (labels or {}).get(LABEL_IMAGE)
    if name:
        return f"`lembench images build {name}`"
    return "`lembench images build` (a suite's own image must be built FROM a lembench image)"


def get_image(client: Any, choice: ImageChoice, version: str) -> Any:
    """The image of ``choice`` after checking it carries this harness version; EngineError with
    the fix otherwise (missing, or from another lembench version)."""
    docker = docker_sdk()
    try:
        image = client.images.get(choice.ref)
    except docker.errors.NotFound:
        raise EngineError(
            f"image {choice.ref} is not built; build it with {rebuild_hint(choice)}"
        ) from None
    except Exception as exc:
        raise EngineError(f"cannot inspect image {choice.ref}: {one_line(exc)}") from None
    labels = image.labels or {}
    built_for = labels.get(LABEL_VERSION)
    if built_for != version:
        what = f"lembench {built_for}" if built_for else "no lembench version (label missing)"
        raise EngineError(
            f"image {choice.ref} carries {what} ({LABEL_VERSION}), this controller is lembench "
            f"{version}; rebuild it with {rebuild_hint(choice, labels)}"
        )
    return image
