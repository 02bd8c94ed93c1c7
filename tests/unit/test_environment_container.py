"""Container detection: the marker files, or what a read-only root leaves (podman writes no
/run/.containerenv under --read-only, as lembench's hardened containers run)."""

from __future__ import annotations

from pathlib import Path

from harness.hardware.environment import in_container


def test_a_plain_host_is_not_a_container(tmp_path: Path) -> None:
    (tmp_path / "proc/1").mkdir(parents=True)
    (tmp_path / "proc/1/cgroup").write_text("0::/init.scope\n")
    assert in_container(tmp_path, {}) is False


def test_read_only_podman_is_a_container_by_its_variable(tmp_path: Path) -> None:
    # The old rule (marker files only) said False here: the container tier's results did too.
    assert in_container(tmp_path, {"container": "podman"}) is True


def test_marker_files_and_engine_cgroups(tmp_path: Path) -> None:
    (tmp_path / ".dockerenv").touch()
    assert in_container(tmp_path, {}) is True
    other = tmp_path / "other"
    (other / "proc/1").mkdir(parents=True)
    (other / "proc/1/cgroup").write_text("0::/system.slice/docker-3f2a.scope\n")
    assert in_container(other, {}) is True
