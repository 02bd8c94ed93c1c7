"""What a harness container may do (lembench.runtimes.confine), against the fake docker SDK:
exactly the files it needs, the cache parts it writes, no privileges, never root, no network
unless needed and asked. Before: the suite's whole folder (all of $HOME for a suite there) and the
whole cache were mounted read-write, host networking always, root for a root controller."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lembench.runtimes.confine import (
    NOBODY,
    NetworkRefused,
    cache_mounts,
    container_user,
    hand_over,
    network_mode,
)
from lembench.runtimes.docker import DockerRuntime, container_spec
from tests.unit.test_docker_runtime import CPU, LABELS, _request, engine, environ  # noqa: F401


def _req(backend: str, model: dict, **measurement: float) -> dict:
    return {
        "model": model,
        "measurement": measurement,
        "experiments": [{"config": {"backend": backend, "openai": {"base_url": "http://s/v1"}}}],
    }


def test_cache_parts_follow_what_the_harness_writes(tmp_path: Path) -> None:
    alias = {"kind": "alias", "ref": "smollm2-135m"}
    assert cache_mounts(_req("pytorch", alias), tmp_path) == {tmp_path / "gguf": "rw"}
    assert cache_mounts(_req("llamacpp", alias), tmp_path) == {tmp_path / "gguf": "ro"}
    cached = _req("vllm", {"kind": "hf", "ref": "o/m"}, idle_baseline_s=10, baseline_cache_s=600)
    assert cache_mounts(cached, tmp_path) == {tmp_path / "baselines": "rw"}
    uncached = _req("vllm", {"kind": "hf", "ref": "o/m"}, idle_baseline_s=10, baseline_cache_s=0)
    assert cache_mounts(uncached, tmp_path) == {}


def test_network_only_when_needed_and_asked() -> None:
    openai = _req("openai", {"kind": "hf", "ref": "o/m"})
    with pytest.raises(NetworkRefused, match=r"openai backend.*`network: host`"):
        network_mode({}, openai, {})
    assert network_mode({"network": "host"}, openai, {}) == "host"
    hub = _req("pytorch", {"kind": "hf", "ref": "org/model"})
    with pytest.raises(NetworkRefused, match="Hugging Face Hub"):
        network_mode({"network": "none"}, hub, {})
    assert network_mode({}, hub, {"HF_HUB_OFFLINE": "1"}) == "none"  # served from the hub cache
    assert network_mode({}, _req("pytorch", {"kind": "alias", "ref": "x"}), {}) == "none"


def test_never_root_for_a_root_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    assert container_user(True, {}).spec == "0:0"  # rootless: container root is the caller
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "getgid", lambda: 0)
    assert container_user(False, {}).spec == f"{NOBODY[0]}:{NOBODY[1]}"
    sudo = container_user(False, {"SUDO_UID": "1234", "SUDO_GID": "99"})
    assert sudo.spec == "1234:99" and sudo.chown_to == (1234, 99)
    assert container_user(False, {"SUDO_UID": "0", "SUDO_GID": "0"}).spec.startswith("65534")
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "getgid", lambda: 1000)
    assert container_user(False, {}).chown_to is None


@pytest.mark.skipif(os.getuid() != 0, reason="handing folders over needs root")
def test_hand_over_gives_the_io_folder_to_the_harness_user(tmp_path: Path) -> None:
    io_dir = tmp_path / "io"
    (io_dir / "results").mkdir(parents=True)
    (io_dir / "request.json").write_text("{}")
    cache = tmp_path / "cache" / "baselines"
    cache.mkdir(parents=True)
    (cache / "old.json").write_text("{}")
    hand_over(io_dir, [cache], NOBODY)
    for path in (io_dir, io_dir / "results", io_dir / "request.json", cache):
        assert (path.stat().st_uid, path.stat().st_gid) == NOBODY
    assert (cache / "old.json").stat().st_uid == 0  # existing entries stay as they are


def test_only_the_files_a_suite_names_are_mounted(engine, environ, tmp_path: Path) -> None:  # noqa: F811
    home = tmp_path / "home" / "alice"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("private")
    (home / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    io_dir = tmp_path / "io"
    request = _request(io_dir)
    request["base_dir"] = str(home)  # the suite lives in the home folder
    request["experiments"][0]["config"]["workload"] = {"kind": "jsonl", "path": "prompts.jsonl"}
    spec = container_spec(
        request,
        io_dir,
        CPU,
        "d",
        gpus="none",
        host_gpu=False,
        environ=environ,
        user="1000:1000",
        home="/home/lembench",
    )
    volumes = spec["volumes"]
    assert volumes[str(home / "prompts.jsonl")]["mode"] == "ro"
    assert not [v for v in volumes if v == str(home) or v.startswith(str(home / ".ssh"))]


def test_a_launch_needing_a_network_it_was_not_given_fails_in_one_line(
    engine,  # noqa: F811
    environ,  # noqa: F811
    tmp_path: Path,
) -> None:
    engine.add_image(CPU, LABELS)
    io_dir = tmp_path / "io"
    request = _request(io_dir, {"kind": "hf", "ref": "org/model"})
    request["experiments"][0]["config"]["backend"] = "pytorch"
    (io_dir / "request.json").write_text(json.dumps(request))
    runtime = DockerRuntime({"gpus": "none"}, environ=environ, host_gpu=False)
    outcome = runtime.launch(io_dir, 30)
    fatal = json.loads((io_dir / "fatal.json").read_text())
    assert outcome.returncode is None and fatal["reason"] == "config_error"
    assert "network: host" in fatal["message"] and not engine.containers
    runtime = DockerRuntime({"gpus": "none", "network": "host"}, environ=environ, host_gpu=False)
    (io_dir / "fatal.json").unlink()
    runtime.launch(io_dir, 30)
    assert engine.containers[0].kwargs["network_mode"] == "host"


def test_network_is_a_suite_setting_of_schema_version_4(tmp_path: Path) -> None:
    from lembench.errors import UserError
    from lembench.suite import load_suite

    body = "name: t\nnetwork: host\nexperiment:\n  backend: pytorch\n  model: smollm2-135m\n"
    (tmp_path / "s.yaml").write_text("schema_version: 4\n" + body)
    assert load_suite(tmp_path / "s.yaml").settings["network"] == "host"
    (tmp_path / "s.yaml").write_text("schema_version: 3\n" + body)
    with pytest.raises(UserError, match="needs schema_version: 4") as e:
        load_suite(tmp_path / "s.yaml")
    assert e.value.key == "network"
