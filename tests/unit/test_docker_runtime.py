"""The docker runtime against a fake of the docker SDK (tests/fakes/fake_docker.py): what a
container is given (mounts, environment, user, GPUs), how it is followed (exit, timeout, kill,
OOM, lost engine), and that every engine or image problem ends the launch with fatal.json and a
one-line reason while the suite goes on. `runtime: auto`'s choice is tested the same way."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import __version__
from harness.contract.results import validation_problem
from lembench.execute import new_invocation_id, run_launches
from lembench.imagedefs import LABEL_BACKEND, LABEL_VERSION, image_ref
from lembench.plan import plan
from lembench.runtimes import LocalRuntime, select_runtime
from lembench.runtimes.docker import DockerRuntime, container_spec
from lembench.runtimes.engine import engine_url, image_digest
from lembench.store import ResultStore
from lembench.suite import load_suite
from tests.fakes.fake_docker import FakeEngine, Program, make_fake_docker

CPU = image_ref("cpu")
LABELS = {LABEL_VERSION: __version__, LABEL_BACKEND: "pytorch"}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = make_fake_docker()
    monkeypatch.setitem(sys.modules, "docker", fake)
    return fake.engine


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    (home / ".cache" / "huggingface" / "hub").mkdir(parents=True)
    return {
        "DOCKER_HOST": "unix:///fake/podman.sock",
        "HOME": str(home),
        "PATH": "/host/venv/bin:/usr/bin",
        "VIRTUAL_ENV": "/host/venv",
        "HF_TOKEN": "hf_secret_value",
        "CUDA_VISIBLE_DEVICES": "3",
        "OMP_NUM_THREADS": "2",
        "LEMBENCH_CACHE_DIR": str(tmp_path / "lbcache"),
        "AWS_SECRET_ACCESS_KEY": "never-passed",
    }


def _request(io_dir: Path, model: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    request = {
        "suite": "unit",
        "model": model or {"kind": "alias", "ref": "smollm2-135m"},
        "base_dir": str(io_dir.parent),
        "experiments": [
            {
                "experiment_id": "e1",
                "run_id": "r1",
                "config": {"backend": "pytorch", "workload": {"kind": "synthetic"}},
            }
        ],
        **extra,
    }
    io_dir.mkdir(parents=True, exist_ok=True)
    (io_dir / "request.json").write_text(json.dumps(request))
    return request


def _runtime(environ: dict[str, str], **settings: Any) -> DockerRuntime:
    return DockerRuntime({"gpus": "all", **settings}, environ=environ, host_gpu=False)


def _fatal(io_dir: Path) -> dict[str, Any]:
    return json.loads((io_dir / "fatal.json").read_text())


# -- what the container gets ------------------------------------------------------------------


def test_spec_mounts_environment_and_user(engine, environ, tmp_path: Path) -> None:
    model_dir = tmp_path / "models" / "m"
    model_dir.mkdir(parents=True)
    io_dir = tmp_path / "results" / ".work" / "inv" / "g-c1"
    request = _request(io_dir, {"kind": "path", "ref": str(model_dir), "tokenizer": None})
    spec = container_spec(
        request,
        io_dir,
        CPU,
        "sha256:dd",
        gpus="all",
        host_gpu=False,
        environ=environ,
        user="1000:1000",
        home="/home/lembench",
    )
    vols = spec["volumes"]
    assert vols[str(io_dir)] == {"bind": str(io_dir), "mode": "rw"}  # same path inside
    assert vols[str(model_dir)] == {"bind": str(model_dir), "mode": "ro"}
    hub = Path(environ["HOME"]) / ".cache" / "huggingface" / "hub"
    assert vols[str(hub)] == {"bind": "/lembench/hf-hub", "mode": "ro"}  # found by variable
    cache = tmp_path / "lbcache"
    # Only the cache parts this request writes (idle baselines are not cached here), and never
    # the suite's folder (base_dir).
    assert not [v for v in vols if v.startswith(str(cache))]
    assert str(io_dir.parent.resolve()) not in vols
    env = spec["environment"]
    assert env["HF_HUB_CACHE"] == "/lembench/hf-hub"
    assert env["LEMBENCH_CACHE_DIR"] == "/lembench/cache"
    assert env["LEMBENCH_IMAGE_DIGEST"] == "sha256:dd"
    assert env["HF_TOKEN"] == "hf_secret_value"  # passed by name to the engine, at run time
    assert env["HOME"] == "/home/lembench" and env["OMP_NUM_THREADS"] == "2"
    for host_only in ("PATH", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES", "AWS_SECRET_ACCESS_KEY"):
        assert host_only not in env
    assert env["PYTHONUNBUFFERED"] == "1"  # harness_environment's fixed part
    assert spec["entrypoint"] == ["python3", "-m", "harness"]
    assert spec["command"] == ["run", str(io_dir / "request.json")]
    assert spec["working_dir"] == str(io_dir) and spec["user"] == "1000:1000"
    assert spec["detach"] is True and spec["network_mode"] == "none" and spec["init"] is True
    assert spec["cap_drop"] == ["ALL"] and spec["security_opt"] == ["no-new-privileges"]
    assert spec["read_only"] is True and set(spec["tmpfs"]) == {"/tmp", "/home/lembench"}
    assert spec["pids_limit"] > 0 and spec["mem_limit"] > 0
    assert "device_requests" not in spec and spec["shm_size"]  # no GPU on this host


def test_nested_read_only_paths_are_not_mounted_twice(engine, environ, tmp_path: Path) -> None:
    model = tmp_path / "suite" / "m"
    model.mkdir(parents=True)
    (model / "tokenizer.json").write_text("{}")
    io_dir = tmp_path / "io"
    request = _request(
        io_dir, {"kind": "path", "ref": str(model), "tokenizer": str(model / "tokenizer.json")}
    )
    spec = container_spec(
        request,
        io_dir,
        CPU,
        "d",
        gpus="none",
        host_gpu=True,
        environ=environ,
        user="0:0",
        home="/tmp",
    )
    assert str(model) in spec["volumes"] and str(model / "tokenizer.json") not in spec["volumes"]


@pytest.mark.parametrize(
    ("gpus", "host_gpu", "expected"),
    [
        ("all", True, {"Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]]}),
        ([0, 2], False, {"Count": 0, "DeviceIDs": ["0", "2"], "Capabilities": [["gpu"]]}),
        ("all", False, None),  # nothing to give: no device request (it would fail)
        ("none", True, None),
    ],
)
def test_gpu_device_requests(engine, environ, tmp_path, gpus, host_gpu, expected) -> None:
    io_dir = tmp_path / "io"
    spec = container_spec(
        _request(io_dir),
        io_dir,
        CPU,
        "d",
        gpus=gpus,
        host_gpu=host_gpu,
        environ=environ,
        user="0:0",
        home="/tmp",
    )
    if expected is None:
        assert "device_requests" not in spec and "ipc_mode" not in spec
    else:
        (req,) = spec["device_requests"]
        assert {k: req[k] for k in expected} == expected
        assert spec["ipc_mode"] == "host" and "shm_size" not in spec


def test_engine_address(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert engine_url({"DOCKER_HOST": "tcp://h:2375"}) == "tcp://h:2375"
    sock = tmp_path / "podman" / "podman.sock"
    sock.parent.mkdir()
    sock.touch()
    monkeypatch.setattr("lembench.runtimes.engine.DEFAULT_SOCKET", str(tmp_path / "none.sock"))
    assert engine_url({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"unix://{sock}"


def test_digest_prefers_the_registry_digest(engine) -> None:
    local = engine.add_image("a", image_id="sha256:" + "1" * 64)
    pulled = engine.add_image("b", repo_digests=["lembench/cpu@sha256:" + "2" * 64])
    assert image_digest(local) == "sha256:" + "1" * 64
    assert image_digest(pulled) == "sha256:" + "2" * 64


# -- following a container --------------------------------------------------------------------


def test_successful_launch(engine, environ, tmp_path: Path) -> None:
    engine.add_image(CPU, LABELS, env=["HOME=/home/lembench"])
    engine.program = Program(status=0, duration_s=0.3, logs=b"loaded\nwrote 1 result\n")
    io_dir = tmp_path / "io"
    _request(io_dir)
    polls = []
    outcome = _runtime(environ).launch(io_dir, 30, on_poll=lambda: polls.append(1))
    assert (outcome.returncode, outcome.timed_out) == (0, False)
    assert outcome.log_path == io_dir / "harness.log"
    assert outcome.log_path.read_bytes() == b"loaded\nwrote 1 result\n"
    (container,) = engine.containers
    assert container.removed and polls
    assert container.reloads >= 2 and container.waits == 1  # polled by inspection, one wait
    # The invoking user; a root controller (CI) runs the harness as nobody, never as root.
    expected = "65534:65534" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    assert container.kwargs["user"] == expected
    assert container.kwargs["environment"]["HOME"] == "/home/lembench"
    assert container.kwargs["environment"]["LEMBENCH_IMAGE_DIGEST"] == "sha256:" + "ab" * 32
    assert not (io_dir / "fatal.json").exists()
    assert "hf_secret_value" not in outcome.log_path.read_text()


def test_the_log_is_in_the_io_folder_when_a_result_appears(engine, environ, tmp_path) -> None:
    """The controller stores each result as soon as it exists, while the container still runs:
    the log must be there by then, or that run is stored without one (as CI once found)."""
    engine.add_image(CPU, LABELS)

    def harness_writes_a_result(kwargs: dict[str, Any]) -> None:
        results = Path(kwargs["working_dir"]) / "results"
        results.mkdir()
        (results / "e1.json").write_text("{}")

    engine.program = Program(
        status=0, duration_s=1.0, logs=b"e1 done\n", action=harness_writes_a_result
    )
    io_dir = tmp_path / "io"
    _request(io_dir)
    seen: list[bytes] = []

    def on_poll() -> None:
        log = io_dir / "harness.log"
        seen.append(log.read_bytes() if log.exists() else b"")

    outcome = _runtime(environ).launch(io_dir, 30, on_poll=on_poll)
    assert seen and seen[0] == b"e1 done\n"
    assert outcome.log_path.read_bytes() == b"e1 done\n"  # replaced at the end, not doubled


def test_rootless_engine_runs_as_container_root(engine, environ, tmp_path: Path) -> None:
    engine.rootless = True
    engine.add_image(CPU, LABELS)
    io_dir = tmp_path / "io"
    _request(io_dir)
    _runtime(environ).launch(io_dir, 30)
    assert engine.containers[0].kwargs["user"] == "0:0"


def test_harness_exit_codes_pass_through(engine, environ, tmp_path: Path) -> None:
    engine.add_image(CPU, LABELS)
    engine.program = Program(status=66)
    io_dir = tmp_path / "io"
    _request(io_dir)
    outcome = _runtime(environ).launch(io_dir, 30)
    assert outcome.returncode == 66 and not (io_dir / "fatal.json").exists()


def test_timeout_stops_and_removes_the_container(engine, environ, tmp_path: Path) -> None:
    engine.add_image(CPU, LABELS)
    engine.program = Program(status=None, logs=b"still loading\n")
    io_dir = tmp_path / "io"
    _request(io_dir)
    outcome = _runtime(environ).launch(io_dir, 0.5)
    assert outcome.timed_out and outcome.returncode == -15  # 143: SIGTERM through the init
    (container,) = engine.containers
    assert container.stopped_with is not None and container.removed
    assert outcome.log_path.read_bytes() == b"still loading\n"


@pytest.mark.parametrize(
    ("program", "reason", "words"),
    [
        (Program(status=137), "crashed", "killed by signal 9"),
        (Program(status=137, oom=True), "oom", "out-of-memory"),
        (Program(status=127), "backend_unavailable", "cannot run `python3 -m harness`"),
    ],
)
def test_killed_container_is_explained(engine, environ, tmp_path, program, reason, words) -> None:
    engine.add_image(CPU, LABELS)
    engine.program = program
    io_dir = tmp_path / "io"
    _request(io_dir)
    outcome = _runtime(environ).launch(io_dir, 30)
    assert not outcome.timed_out
    fatal = _fatal(io_dir)
    assert fatal["reason"] == reason and words in fatal["message"]
    assert engine.containers[0].removed


def test_the_harness_own_fatal_is_kept(engine, environ, tmp_path: Path) -> None:
    engine.add_image(CPU, LABELS)

    def harness_gives_up(kwargs: dict[str, Any]) -> None:
        io = Path(kwargs["working_dir"])
        (io / "fatal.json").write_text('{"reason": "model_load_error", "message": "no model"}')

    engine.program = Program(status=137, action=harness_gives_up)
    io_dir = tmp_path / "io"
    _request(io_dir)
    _runtime(environ).launch(io_dir, 30)
    assert _fatal(io_dir)["reason"] == "model_load_error"


def test_lost_engine_while_running(engine, environ, tmp_path: Path) -> None:
    engine.add_image(CPU, LABELS)
    engine.program = Program(status=None)
    engine.lost = True
    io_dir = tmp_path / "io"
    _request(io_dir)
    outcome = _runtime(environ).launch(io_dir, 30)
    assert outcome.returncode is None
    assert _fatal(io_dir)["reason"] == "backend_unavailable"


# -- engine and image problems: one line, fatal.json, returncode None ------------------------


def _assert_failed(outcome, io_dir: Path, *words: str) -> str:
    assert outcome.returncode is None and not outcome.timed_out
    fatal = _fatal(io_dir)
    assert fatal["reason"] == "backend_unavailable"
    assert "\n" not in fatal["message"]
    for word in words:
        assert word in fatal["message"]
    assert fatal["message"] in (io_dir / "harness.log").read_text()
    return fatal["message"]


def test_unreachable_engine(engine, environ, tmp_path: Path) -> None:
    engine.reachable = False
    io_dir = tmp_path / "io"
    _request(io_dir)
    outcome = _runtime(environ).launch(io_dir, 30)
    _assert_failed(outcome, io_dir, "unix:///fake/podman.sock", "no container engine reachable")


def test_missing_image(engine, environ, tmp_path: Path) -> None:
    io_dir = tmp_path / "io"
    _request(io_dir)
    outcome = _runtime(environ).launch(io_dir, 30)
    _assert_failed(outcome, io_dir, CPU, "not built", "lembench images build cpu")


@pytest.mark.parametrize("labels", [{LABEL_VERSION: "0.0.1"}, {}])
def test_image_of_another_version_is_refused(engine, environ, tmp_path, labels) -> None:
    engine.add_image(CPU, labels)
    io_dir = tmp_path / "io"
    _request(io_dir)
    outcome = _runtime(environ).launch(io_dir, 30)
    _assert_failed(outcome, io_dir, "lembench images build cpu", __version__)
    assert not engine.containers


def test_derived_image_of_another_version_names_its_lembench_image(
    engine, environ, tmp_path
) -> None:
    engine.add_image("me/custom:1", {LABEL_VERSION: "0.0.1", "dev.lembench.image": "cpu"})
    io_dir = tmp_path / "io"
    _request(io_dir)
    outcome = _runtime(environ, image="me/custom:1").launch(io_dir, 30)
    _assert_failed(outcome, io_dir, "me/custom:1", "0.0.1", "lembench images build cpu")


def test_suite_image_overrides_the_table(engine, environ, tmp_path: Path) -> None:
    engine.add_image("me/custom:1", LABELS)
    io_dir = tmp_path / "io"
    _request(io_dir)
    _runtime(environ, image="me/custom:1").launch(io_dir, 30)
    assert engine.containers[0].kwargs["image"] == "me/custom:1"


def test_engine_refuses_to_start(engine, environ, tmp_path: Path) -> None:
    from tests.fakes.fake_docker import APIError

    engine.add_image(CPU, LABELS)
    engine.run_error = APIError(
        "500 Server Error",
        explanation='could not select device driver "" with capabilities: [[gpu]]',
    )
    io_dir = tmp_path / "io"
    _request(io_dir)
    runtime = DockerRuntime({"gpus": [0]}, environ=environ, host_gpu=False)
    outcome = runtime.launch(io_dir, 30)
    _assert_failed(outcome, io_dir, "could not select device driver", "NVIDIA Container Toolkit")


def test_failures_become_records_and_the_suite_goes_on(engine, environ, tmp_path: Path) -> None:
    """Through the executor: every experiment of every launch is stored as failed, with reason."""
    engine.reachable = False
    (tmp_path / "s.yaml").write_text(
        "schema_version: 2\nname: d\ncycles: 2\nexperiment:\n  backend: pytorch\n"
        "  model: smollm2-135m\nsweep:\n  batch_size: [1, 2]\n"
    )
    suite = load_suite(tmp_path / "s.yaml")
    store = ResultStore(tmp_path / "results")
    report = run_launches(suite, plan(suite), store, _runtime(environ), new_invocation_id())
    assert len(report.stored) == 4 and len(report.failed) == 4
    for run in report.stored:
        assert validation_problem(run.result) is None
        assert run.result["error"]["reason"] == "backend_unavailable"
        assert "no container engine reachable" in run.result["error"]["message"]
        assert run.result["provenance"]["controller"]["runtime"] == "docker"


# -- runtime selection ------------------------------------------------------------------------


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch, environ):
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    gpu = {"present": False}
    monkeypatch.setattr("lembench.imagedefs.host_has_nvidia_gpu", lambda: gpu["present"])
    return gpu


def test_select_explicit_runtimes(engine, host) -> None:
    runtime, notice = select_runtime({"runtime": "local"})
    assert isinstance(runtime, LocalRuntime) and notice is None
    runtime, notice = select_runtime({"runtime": "auto"}, "docker")
    assert isinstance(runtime, DockerRuntime) and notice is None
    assert not engine.clients  # explicit docker does not probe: launches report problems


def test_auto_without_engine_is_local(engine, host) -> None:
    engine.reachable = False
    runtime, notice = select_runtime({"runtime": "auto"})
    assert isinstance(runtime, LocalRuntime)
    assert notice.startswith("runtime auto: local (no container engine reachable at unix:///fake")
    assert "\n" not in notice


def test_auto_with_engine_but_no_image_is_local(engine, host) -> None:
    runtime, notice = select_runtime({"runtime": "auto"})
    assert isinstance(runtime, LocalRuntime)
    assert "lembench images build cpu" in notice


def test_auto_with_an_old_image_is_local(engine, host) -> None:
    engine.add_image(CPU, {LABEL_VERSION: "0.0.1"})
    runtime, notice = select_runtime({"runtime": "auto"})
    assert isinstance(runtime, LocalRuntime) and "0.0.1" in notice


def test_auto_with_engine_and_image_is_docker(engine, host) -> None:
    engine.add_image(CPU, LABELS)
    runtime, notice = select_runtime({"runtime": "auto", "gpus": "all"}, backends=["pytorch"])
    assert isinstance(runtime, DockerRuntime)
    assert notice == f"runtime auto: docker (engine at unix:///fake/podman.sock, image {CPU})"


def test_auto_on_a_gpu_host_wants_the_pytorch_image(engine, host) -> None:
    host["present"] = True
    engine.add_image(CPU, LABELS)
    runtime, notice = select_runtime({"runtime": "auto"})
    assert isinstance(runtime, LocalRuntime)
    assert "lembench images build pytorch" in notice
