"""The ``docker`` runtime: each harness process in a container of the backend's lembench image, on
any Docker-compatible engine (Docker; podman's API socket), through the ``docker`` Python SDK.

What the container gets:

- the io folder bind-mounted read-write at the same absolute path (so every path in request.json
  is valid inside), and the working directory there;
- read-only: local model paths and tokenizers the request names, its workload files (not the
  suite's folder), CA bundle files named by SSL_CERT_FILE & co., the Hugging Face hub cache
  (HF_HUB_CACHE is set to it inside);
- of lembench's cache (LEMBENCH_CACHE_DIR) only the parts the harness writes (converted GGUF
  models, idle baselines), so a conversion done in one container or on the host is reused;
- confinement (lembench.runtimes.confine): no capabilities, no-new-privileges, a read-only root
  filesystem with tmpfs /tmp and HOME, pids and memory limits, no network unless the backend
  needs one and the suite asks (``network: host``);
- GPUs as device requests: the suite's ``gpus`` (``all``: every GPU when the host has NVIDIA GPUs;
  a list: those indices; ``none``: no GPUs), with ``ipc=host`` for NCCL when GPUs are given (a 2 GB
  /dev/shm otherwise);
- the environment: ``harness_environment()`` (the allowlist) minus what describes the host's
  filesystem or devices (PATH, HOME, VIRTUAL_ENV, CUDA_VISIBLE_DEVICES, ...); secrets (HF_TOKEN)
  are passed by name from the controller's environment and written nowhere by lembench; and
  LEMBENCH_IMAGE_DIGEST, recorded by the harness as ``container_image_digest``;
- the user: the calling user's uid:gid on a rootful engine (results and caches stay theirs, and
  the image's own non-root user could not write a folder the user owns), or 0:0 on a rootless
  engine (container root *is* the calling user there; any other uid maps to a subordinate id that
  cannot write the io folder). A root controller runs containers as the sudo user or nobody,
  never as root.

Failures never stop the suite: an unreachable engine, a missing image or one built for another
lembench version, a container that cannot start, or one that is killed each end the launch with
``<io>/fatal.json`` (reason ``backend_unavailable``, ``crashed`` or ``oom``) and a one-line message,
so every experiment of the launch is stored as failed with that reason. A timeout stops and removes
the container and returns like the local runtime (exit status of the stopped process,
``timed_out``). The container's output is always kept as ``<io>/harness.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness import __version__
from harness.contract.io import FATAL_FILE, RESULTS_DIR, write_fatal
from lembench.runtimes.base import (
    LOG_FILE,
    LaunchOutcome,
    Runtime,
    harness_environment,
    lifeline_environment,
    requested_secrets,
)
from lembench.runtimes.confine import (
    NetworkRefused,
    cache_mounts,
    container_user,
    hand_over,
    hardening,
    network_mode,
)
from lembench.runtimes.engine import (
    EngineError,
    choose_image,
    connect,
    docker_sdk,
    get_image,
    image_digest,
    is_rootless,
    one_line,
)

POLL_S = 0.5
#: After `stop` sends SIGTERM, seconds before the engine kills the container.
TERM_GRACE_S = 10
#: /dev/shm of containers without GPUs (torch's CPU paths use little; Docker's default is 64 MB).
SHM_SIZE = "2g"
#: Host-specific variables of the allowlist that would be wrong inside a container.
HOST_ONLY_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "TMPDIR",
        "XDG_CACHE_HOME",
        "TORCH_HOME",
        "HF_HOME",
        "HF_HUB_CACHE",
        "SSL_CERT_DIR",
        "CUDA_VISIBLE_DEVICES",  # the device request decides; indices restart at 0 inside
        "NVIDIA_VISIBLE_DEVICES",
        "LEMBENCH_CACHE_DIR",
        "LEMBENCH_POWERCAP_ROOT",
    }
)
#: Where lembench's cache parts and the Hugging Face hub cache are mounted inside.
CACHE_IN_CONTAINER = "/lembench/cache"
HUB_IN_CONTAINER = "/lembench/hf-hub"
#: Variables naming a CA bundle file: passed (and the file mounted) when the file exists.
CA_FILE_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def lembench_cache_dir(environ: Mapping[str, str]) -> Path:
    """The host's lembench cache (converted GGUF models, baselines): as
    harness.models.gguf_cache."""
    base = environ.get("LEMBENCH_CACHE_DIR")
    home = environ.get("HOME") or str(Path.home())
    return Path(base).expanduser() if base else Path(home) / ".cache" / "lembench"


def hf_hub_cache(environ: Mapping[str, str]) -> Path:
    """The host's Hugging Face hub cache, as huggingface_hub finds it."""
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    home = environ.get("HOME") or str(Path.home())
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return Path(cache) / "huggingface" / "hub"


def _request_paths(request: dict[str, Any]) -> list[Path]:
    """Host paths the request refers to that must be readable inside (read-only mounts)."""
    paths: list[Path] = []
    model = request.get("model") or {}
    if model.get("kind") in ("path", "gguf") and model.get("ref"):
        paths.append(Path(model["ref"]))
    tokenizer = model.get("tokenizer")
    if isinstance(tokenizer, str) and tokenizer.startswith("/"):
        paths.append(Path(tokenizer))
    # The files the suite names, not the suite's folder: a suite in $HOME must not expose $HOME.
    base_dir = Path(request.get("base_dir") or "/")
    for exp in request.get("experiments", []):
        workload = (exp.get("config") or {}).get("workload") or {}
        path = workload.get("path")
        if isinstance(path, str) and path:
            paths.append(base_dir / Path(path).expanduser())  # absolute paths stay as they are
    return paths


def _add(volumes: dict[str, dict[str, str]], path: Path, mode: str) -> None:
    """Mount ``path`` at the same place, unless a folder mounted already covers it (read-write, or
    with the same mode); read-write replaces read-only for the same path."""
    key = str(path)
    for other, spec in volumes.items():
        inside = key == other or key.startswith(other.rstrip("/") + "/")
        if inside and (spec["mode"] == "rw" or spec["mode"] == mode):
            return
    volumes[key] = {"bind": key, "mode": mode}


def container_spec(
    request: dict[str, Any],
    io_dir: Path,
    image_ref: str,
    digest: str,
    *,
    gpus: Any,
    host_gpu: bool,
    environ: Mapping[str, str],
    user: str,
    home: str,
    network: str = "none",
) -> dict[str, Any]:
    """Keyword arguments of ``client.containers.run`` for one launch (see the module doc and
    lembench.runtimes.confine for what it may do)."""
    docker = docker_sdk()
    env = {
        k: v
        for k, v in harness_environment(dict(environ), requested_secrets(io_dir)).items()
        if k not in HOST_ONLY_ENV
    }
    # No pid of ours is visible in the container: the heartbeat in the io folder is the lifeline.
    env.update(lifeline_environment())
    volumes: dict[str, dict[str, str]] = {}
    _add(volumes, io_dir, "rw")
    # Caches are found through variables only, so they are mounted at fixed places inside: a
    # cache in a home folder (/root/.cache) would sit under a folder the unprivileged container
    # user cannot traverse in the image (/root is 0700 there).
    cache = lembench_cache_dir(environ)
    for part, mode in cache_mounts(request, cache.resolve()).items():
        part.mkdir(parents=True, exist_ok=True)  # a bind mount's source must exist (podman)
        volumes[str(part)] = {"bind": f"{CACHE_IN_CONTAINER}/{part.name}", "mode": mode}
    env["LEMBENCH_CACHE_DIR"] = CACHE_IN_CONTAINER
    hub = hf_hub_cache(environ)
    if hub.is_dir():
        volumes[str(hub.resolve())] = {"bind": HUB_IN_CONTAINER, "mode": "ro"}
        env["HF_HUB_CACHE"] = HUB_IN_CONTAINER
    powercap = environ.get("LEMBENCH_POWERCAP_ROOT")
    if powercap and Path(powercap).is_dir():
        _add(volumes, Path(powercap).resolve(), "ro")
        env["LEMBENCH_POWERCAP_ROOT"] = str(Path(powercap).resolve())
    for var in CA_FILE_ENV:
        value = env.pop(var, None)
        if value and Path(value).is_file():
            _add(volumes, Path(value).resolve(), "ro")
            env[var] = str(Path(value).resolve())
    # Folders before what they contain, so a file inside a mounted folder is not mounted again.
    wanted = sorted(
        {p.resolve() for p in _request_paths(request) if p.exists()}, key=lambda p: len(p.parts)
    )
    for path in wanted:
        _add(volumes, path, "ro")
    env["HOME"] = home
    env["LEMBENCH_IMAGE_DIGEST"] = digest

    device_requests = []
    if gpus == "all" and host_gpu:
        device_requests = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    elif isinstance(gpus, list | tuple) and gpus:
        device_requests = [
            docker.types.DeviceRequest(device_ids=[str(g) for g in gpus], capabilities=[["gpu"]])
        ]
    spec: dict[str, Any] = {
        "image": image_ref,
        # The entry point is set, so images whose own one starts a server (vLLM's) run the harness.
        "entrypoint": ["python3", "-m", "harness"],
        "command": ["run", str(io_dir / "request.json")],
        "detach": True,
        "environment": env,
        "volumes": volumes,
        "working_dir": str(io_dir),
        "user": user,
        "network_mode": network,
        # A tiny init (docker-init, podman's catatonit) as PID 1 forwards `stop`'s SIGTERM to the
        # harness; python as PID 1 would ignore it and be killed only after the grace period.
        "init": True,
        "name": f"lembench-{io_dir.name}-{uuid.uuid4().hex[:6]}",
        "labels": {"dev.lembench.io": str(io_dir), "dev.lembench.suite": str(request.get("suite"))},
    }
    spec.update(hardening(home))
    # HOME is a tmpfs (the root filesystem is read-only): libraries' caches start empty there.
    if device_requests:
        spec["device_requests"] = device_requests
        spec["ipc_mode"] = "host"  # NCCL and torch share memory between processes
    else:
        spec["shm_size"] = SHM_SIZE
    return spec


def _image_home(image: Any) -> str:
    """HOME as the image sets it (the lembench images: a folder any uid may write), else /tmp."""
    for item in (image.attrs.get("Config") or {}).get("Env") or []:
        if item.startswith("HOME="):
            return item.split("=", 1)[1]
    return "/tmp"


def _exit_status(result: Any) -> int | None:
    if isinstance(result, dict):
        code = result.get("StatusCode")
        return int(code) if code is not None else None
    return int(result) if isinstance(result, int) else None


class DockerRuntime(Runtime):
    """Runs ``python3 -m harness run <io>/request.json`` in the backend's image."""

    name = "docker"

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        client: Any = None,
        environ: Mapping[str, str] | None = None,
        host_gpu: bool | None = None,
        version: str = __version__,
    ) -> None:
        self.settings = dict(settings or {})
        self._client = client
        self._environ = environ
        self._host_gpu = host_gpu
        self.version = version

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def host_gpu(self) -> bool:
        if self._host_gpu is None:
            from lembench.imagedefs import host_has_nvidia_gpu

            self._host_gpu = host_has_nvidia_gpu()
        return self._host_gpu

    def client(self) -> Any:
        if self._client is None:
            self._client, _ = connect(self.environ)
        return self._client

    # -- one launch -------------------------------------------------------------------------
    def launch(
        self, io_dir: Path, timeout_s: float, on_poll: Callable[[], None] | None = None
    ) -> LaunchOutcome:
        io_dir = io_dir.resolve()
        log_path = io_dir / LOG_FILE
        start = time.monotonic()

        def failed(reason: str, message: str) -> LaunchOutcome:
            _log(log_path, f"lembench docker runtime: {message}")
            if not (io_dir / FATAL_FILE).exists():
                write_fatal(io_dir, reason, message)
            return LaunchOutcome(None, False, time.monotonic() - start, log_path)

        try:
            request = json.loads((io_dir / "request.json").read_text("utf-8"))
            backend = request["experiments"][0]["config"]["backend"]
            client = self.client()
            choice = choose_image(backend, self.settings, self.host_gpu())
            image = get_image(client, choice, self.version)
            network = network_mode(self.settings, request, self.environ)
            who = container_user(is_rootless(client), self.environ)
            spec = container_spec(
                request,
                io_dir,
                choice.ref,
                image_digest(image),
                gpus=self.settings.get("gpus", "all"),
                host_gpu=self.host_gpu(),
                environ=self.environ,
                user=who.spec,
                home=_image_home(image),
                network=network,
            )
            if who.chown_to is not None:  # a root controller: the harness runs unprivileged
                writable = [Path(k) for k, v in spec["volumes"].items() if v["mode"] == "rw"]
                hand_over(io_dir, [p for p in writable if p != io_dir], who.chown_to)
        except NetworkRefused as exc:
            return failed("config_error", str(exc))
        except EngineError as exc:
            self._client = None  # try to connect again for the next launch
            return failed("backend_unavailable", str(exc))
        except OSError as exc:
            return failed("backend_unavailable", f"cannot prepare the container: {exc}")

        docker = docker_sdk()
        try:
            container = client.containers.run(**spec)
        except docker.errors.ImageNotFound as exc:
            return failed("backend_unavailable", f"image {choice.ref} vanished: {one_line(exc)}")
        except docker.errors.APIError as exc:
            hint = ""
            if "device_requests" in spec:
                hint = " (GPUs requested: is the NVIDIA Container Toolkit or CDI set up?)"
            return failed(
                "backend_unavailable",
                f"container engine refused to start {choice.ref}{hint}: {one_line(exc)}",
            )
        except Exception as exc:  # connection lost, timeouts
            self._client = None
            return failed("backend_unavailable", f"cannot start a container: {one_line(exc)}")
        return self._follow(container, io_dir, log_path, timeout_s, on_poll, start, choice.ref)

    def _follow(
        self,
        container: Any,
        io_dir: Path,
        log_path: Path,
        timeout_s: float,
        on_poll: Callable[[], None] | None,
        start: float,
        image_ref: str,
    ) -> LaunchOutcome:
        """Wait for ``container`` (stopping it at the timeout), keep its log, remove it."""
        timed_out = False
        status: int | None = None
        lost: str | None = None
        mirror = _LogMirror(container, io_dir, log_path)
        try:
            while True:
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                    container.stop(timeout=TERM_GRACE_S)
                    status = _exit_status(container.wait(timeout=TERM_GRACE_S + 30))
                    break
                # Poll the state (an inspection returns at once). A wait that times out on the
                # client keeps running in podman's service, polling the container: repeated
                # short waits pile up there and eat the CPU being measured.
                try:
                    container.reload()
                except Exception as exc:
                    lost = one_line(exc)
                    break
                if container.status in ("exited", "dead"):
                    status = _exit_status(container.wait(timeout=60))
                    break
                mirror.refresh()
                if on_poll is not None:
                    on_poll()
                time.sleep(POLL_S)
        except BaseException:  # Ctrl-C or an engine failure: leave no container behind
            _cleanup(container, log_path)
            raise
        if on_poll is not None:
            on_poll()
        oom = _oom_killed(container)
        _cleanup(container, log_path)
        duration = time.monotonic() - start
        if lost is not None:
            self._client = None
            _write_reason(io_dir, log_path, "backend_unavailable", f"lost the container: {lost}")
            return LaunchOutcome(None, False, duration, log_path)
        returncode = status
        if status is not None and status > 128:  # killed by a signal, as the shell reports it
            returncode = -(status - 128)
        if not timed_out and status is not None:
            if oom:
                _write_reason(
                    io_dir,
                    log_path,
                    "oom",
                    f"container was killed by the out-of-memory killer (exit {status})",
                )
            elif status > 128:
                _write_reason(
                    io_dir,
                    log_path,
                    "crashed",
                    f"container was killed by signal {status - 128} (exit {status})",
                )
            elif status in (126, 127):
                _write_reason(
                    io_dir,
                    log_path,
                    "backend_unavailable",
                    f"image {image_ref} cannot run `python3 -m harness` (exit {status}): "
                    "is it a lembench image?",
                )
        return LaunchOutcome(returncode, timed_out, duration, log_path)


def _oom_killed(container: Any) -> bool:
    try:
        container.reload()
        return bool(container.attrs.get("State", {}).get("OOMKilled"))
    except Exception:
        return False


class _LogMirror:
    """Copies the container's output into the io folder's log whenever the harness has written a
    new result, so a run the controller stores mid-launch (lembench.execute stores each result as
    soon as it exists) has its log up to that point, as under the local runtime, whose harness
    writes the log file directly. Reading the whole log only when a result appears keeps the cost
    at one read per experiment, not one per poll."""

    def __init__(self, container: Any, io_dir: Path, log_path: Path) -> None:
        self.container, self.log_path = container, log_path
        self.results = io_dir / RESULTS_DIR
        self.seen = 0

    def refresh(self) -> None:
        try:
            count = sum(1 for _ in self.results.iterdir())
        except OSError:
            return
        if count != self.seen:
            self.seen = count
            _save_logs(self.container, self.log_path)


def _save_logs(container: Any, log_path: Path) -> None:
    """Write the container's whole output so far as the log (replacing an earlier copy; the
    runtime's own lines are appended only after the container is gone)."""
    try:
        logs = container.logs(stdout=True, stderr=True)
    except Exception as exc:
        logs = f"lembench docker runtime: could not read the container's log: {one_line(exc)}\n"
    if isinstance(logs, str):
        logs = logs.encode()
    with contextlib.suppress(OSError):
        log_path.write_bytes(logs or b"")


def _cleanup(container: Any, log_path: Path) -> None:
    """Keep the container's output in the log, then remove it (force: it may still run)."""
    _save_logs(container, log_path)
    with contextlib.suppress(Exception):
        container.remove(force=True)


def _log(log_path: Path, line: str) -> None:
    try:
        with log_path.open("a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")
    except OSError:
        pass


def _write_reason(io_dir: Path, log_path: Path, reason: str, message: str) -> None:
    """fatal.json for a launch that ended without the harness saying why (it may have)."""
    _log(log_path, f"lembench docker runtime: {message}")
    if not (io_dir / FATAL_FILE).exists():
        write_fatal(io_dir, reason, message)
