"""A fake of the ``docker`` Python SDK (docker 7.x) for unit tests: the subset lembench calls, with
the real names, signatures, return types and exceptions.

- ``docker.from_env(environment=..., timeout=...)`` and ``docker.DockerClient(base_url=...,
  timeout=...)`` return a client of the one ``FakeEngine`` the fake module holds; ``client.ping()``
  raises ``DockerException`` (as the real one does for a missing socket) when the engine is down;
- ``client.images.get(ref)`` -> ``FakeImage`` (``.id``, ``.labels``, ``.tags``, ``.attrs`` with
  ``RepoDigests``, ``Size``, ``Config.Env``) or ``docker.errors.ImageNotFound``;
- ``client.containers.run(image, command, detach=True, **kwargs)`` -> ``FakeContainer``:
  ``reload()`` refreshes ``attrs`` and ``status`` ("running", "exited"; a broken connection
  raises ``requests.exceptions.ConnectionError``), ``wait(timeout=...)`` raises
  ``requests.exceptions.ReadTimeout`` while it runs (the real SDK does when the read times out)
  and returns ``{"StatusCode": n, "Error": None}`` after; ``stop(timeout=...)``,
  ``logs(stdout=..., stderr=...)`` (bytes), ``remove(force=...)``;
- ``client.api.build(...)`` yields decoded progress chunks like the real streaming build;
- ``docker.types.DeviceRequest`` (a dict, as the real one) and ``docker.errors.*``.

Install it with ``monkeypatch.setitem(sys.modules, "docker", fake)``; a test programs the engine
through ``fake.engine`` (images, reachability, and what the next container does: ``program``).
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests


class DockerException(Exception):
    """Base of the SDK's errors."""


class APIError(DockerException):
    def __init__(self, message: Any, response: Any = None, explanation: str | None = None):
        super().__init__(message)
        self.response = response
        self.explanation = explanation


class NotFound(APIError):
    pass


class ImageNotFound(NotFound):
    pass


class DeviceRequest(dict):
    def __init__(
        self,
        driver: str = "",
        count: int = 0,
        device_ids: list[str] | None = None,
        capabilities: list[list[str]] | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            Driver=driver,
            Count=count,
            DeviceIDs=device_ids or [],
            Capabilities=capabilities or [],
            Options=options or {},
        )


@dataclass
class FakeImage:
    id: str
    labels: dict[str, str]
    tags: list[str]
    attrs: dict[str, Any]


@dataclass
class Program:
    """What a container does: run ``action(kwargs)`` at start (e.g. write files into the io
    folder), then run for ``duration_s`` and exit with ``status`` (None: never exits by itself)."""

    status: int | None = 0
    duration_s: float = 0.0
    logs: bytes = b"harness says hello\n"
    oom: bool = False
    action: Callable[[dict[str, Any]], None] | None = None
    stop_status: int = 143  # SIGTERM, forwarded by the container's init


class FakeContainer:
    def __init__(self, engine: FakeEngine, kwargs: dict[str, Any], program: Program) -> None:
        self.engine = engine
        self.kwargs = kwargs
        self.program = program
        self.started = time.monotonic()
        self.exit_status: int | None = None
        self.removed = False
        self.reloads = 0
        self.waits = 0
        self.stopped_with: int | None = None
        self.attrs: dict[str, Any] = {"State": {"OOMKilled": False, "Status": "running"}}
        self.id = f"c{len(engine.containers):063d}"
        if program.action is not None:
            program.action(kwargs)

    def _exited(self) -> bool:
        if self.exit_status is not None:
            return True
        p = self.program
        if p.status is not None and time.monotonic() - self.started >= p.duration_s:
            self.exit_status = p.status
            return True
        return False

    @property
    def status(self) -> str:
        """As the SDK's ``Container.status``: the state seen at the last reload."""
        return self.attrs["State"]["Status"]

    def wait(self, timeout: float | None = None, condition: str | None = None) -> dict[str, Any]:
        self.waits += 1
        if self.engine.lost:
            raise requests.exceptions.ConnectionError("Connection aborted.")
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while not self._exited():
            if time.monotonic() >= deadline:
                raise requests.exceptions.ReadTimeout("UnixHTTPConnectionPool: Read timed out.")
            time.sleep(0.01)
        return {"StatusCode": self.exit_status, "Error": None}

    def stop(self, timeout: int | None = None) -> None:
        self.stopped_with = timeout
        if not self._exited():
            self.exit_status = self.program.stop_status

    def reload(self) -> None:
        self.reloads += 1
        if self.engine.lost:
            raise requests.exceptions.ConnectionError("Connection aborted.")
        self.attrs["State"]["OOMKilled"] = self.program.oom
        self.attrs["State"]["Status"] = "exited" if self._exited() else "running"

    def logs(self, stdout: bool = True, stderr: bool = True, **kwargs: Any) -> bytes:
        return self.program.logs

    def remove(self, force: bool = False, v: bool = False) -> None:
        if not force and not self._exited():
            raise APIError("cannot remove a running container")
        self.removed = True


@dataclass
class FakeEngine:
    reachable: bool = True
    rootless: bool = False
    images: dict[str, FakeImage] = field(default_factory=dict)
    program: Program = field(default_factory=Program)
    run_error: Exception | None = None
    lost: bool = False  # the connection breaks while a container runs
    containers: list[FakeContainer] = field(default_factory=list)
    clients: list[FakeClient] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    build_chunks: list[dict[str, Any]] = field(
        default_factory=lambda: [{"stream": "Step 1/1 : FROM base\n"}]
    )

    def add_image(
        self,
        ref: str,
        labels: dict[str, str] | None = None,
        *,
        image_id: str = "sha256:" + "ab" * 32,
        repo_digests: list[str] | None = None,
        env: list[str] | None = None,
    ) -> FakeImage:
        image = FakeImage(
            id=image_id,
            labels=dict(labels or {}),
            tags=[ref],
            attrs={
                "Id": image_id,
                "RepoDigests": list(repo_digests or []),
                "Size": 1_234_000_000,
                "Config": {"Env": list(env or ["PATH=/opt/venv/bin:/usr/bin", "HOME=/home/x"])},
            },
        )
        self.images[ref] = image
        return image


class _Images:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def get(self, name: str) -> FakeImage:
        if name in self.engine.images:
            return self.engine.images[name]
        raise ImageNotFound(f'404 Client Error: Not Found ("No such image: {name}")')

    def list(self, name: str | None = None, all: bool = False, filters: Any = None) -> list:
        return list(self.engine.images.values())


class _Containers:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def run(
        self,
        image: str,
        command: Any = None,
        stdout: bool = True,
        stderr: bool = False,
        remove: bool = False,
        **kwargs: Any,
    ) -> Any:
        if self.engine.run_error is not None:
            raise self.engine.run_error
        if image not in self.engine.images:
            raise ImageNotFound(f"No such image: {image}")
        kwargs = {"image": image, "command": command, **kwargs}
        container = FakeContainer(self.engine, kwargs, self.engine.program)
        self.engine.containers.append(container)
        if kwargs.get("detach"):
            return container
        container.wait()
        return container.logs()


class _Api:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def build(self, **kwargs: Any):
        self.engine.builds.append(kwargs)
        yield from self.engine.build_chunks
        if not any("error" in c for c in self.engine.build_chunks):
            labels = {
                "org.opencontainers.image.version": kwargs["buildargs"]["LEMBENCH_VERSION"],
                "dev.lembench.source": kwargs["buildargs"]["LEMBENCH_SOURCE"],
            }
            if "BASE_IMAGE" in kwargs["buildargs"]:
                labels["dev.lembench.base"] = kwargs["buildargs"]["BASE_IMAGE"]
            self.engine.add_image(kwargs["tag"], labels, image_id="sha256:" + "cd" * 32)


class FakeClient:
    def __init__(self, engine: FakeEngine, base_url: str | None, timeout: Any) -> None:
        self.engine = engine
        self.base_url = base_url
        self.timeout = timeout
        self.images = _Images(engine)
        self.containers = _Containers(engine)
        self.api = _Api(engine)
        self.closed = False
        engine.clients.append(self)

    def ping(self) -> bool:
        if not self.engine.reachable:
            raise DockerException(
                "Error while fetching server API version: ('Connection aborted.', "
                "FileNotFoundError(2, 'No such file or directory'))"
            )
        return True

    def info(self) -> dict[str, Any]:
        options = ["name=seccomp,profile=default"]
        if self.engine.rootless:
            options.append("name=rootless")
        return {"SecurityOptions": options}

    def version(self) -> dict[str, Any]:
        return {"Version": "4.3.1", "Components": [{"Name": "Podman Engine"}]}

    def close(self) -> None:
        self.closed = True


def make_fake_docker(engine: FakeEngine | None = None) -> types.ModuleType:
    """A module object standing in for ``docker``, bound to ``engine``."""
    module = types.ModuleType("docker")
    module.engine = engine or FakeEngine()  # type: ignore[attr-defined]

    def from_env(environment: dict[str, str] | None = None, timeout: Any = 60, **kw: Any):
        env = environment or {}
        return FakeClient(module.engine, env.get("DOCKER_HOST"), timeout)  # type: ignore[attr-defined]

    def docker_client(base_url: str | None = None, timeout: Any = 60, **kw: Any):
        return FakeClient(module.engine, base_url, timeout)  # type: ignore[attr-defined]

    module.from_env = from_env  # type: ignore[attr-defined]
    module.DockerClient = docker_client  # type: ignore[attr-defined]
    module.errors = types.SimpleNamespace(  # type: ignore[attr-defined]
        DockerException=DockerException,
        APIError=APIError,
        NotFound=NotFound,
        ImageNotFound=ImageNotFound,
    )
    module.types = types.SimpleNamespace(DeviceRequest=DeviceRequest)  # type: ignore[attr-defined]
    return module
