"""`lembench images` and `lembench doctor` against the fake docker SDK: what they build, skip,
list and report, and their one-line errors."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from harness import __version__
from lembench.doctor import doctor_command
from lembench.errors import UserError
from lembench.imagedefs import (
    LABEL_BASE,
    LABEL_SOURCE,
    LABEL_VERSION,
    image_ref,
    source_digest,
    source_root,
)
from lembench.images import images_group
from tests.fakes.fake_docker import FakeEngine, make_fake_docker

CPU = image_ref("cpu")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = make_fake_docker()
    monkeypatch.setitem(sys.modules, "docker", fake)
    monkeypatch.setenv("DOCKER_HOST", "unix:///fake/engine.sock")
    monkeypatch.setattr("lembench.images.host_has_nvidia_gpu", lambda: False)
    monkeypatch.setattr("lembench.doctor.host_has_nvidia_gpu", lambda: False)
    return fake.engine


def _current_labels() -> dict[str, str]:
    return {LABEL_VERSION: __version__, LABEL_SOURCE: source_digest(source_root(), "cpu")}


def test_build_defaults_to_the_images_that_fit(engine) -> None:
    result = CliRunner().invoke(images_group, ["build", "--network", "host"])
    assert result.exit_code == 0, result.output
    (build,) = engine.builds  # no GPU: cpu only
    assert build["tag"] == CPU and build["dockerfile"] == "images/cpu/Dockerfile"
    assert build["path"] == str(source_root()) and build["network_mode"] == "host"
    assert build["buildargs"]["LEMBENCH_VERSION"] == __version__
    assert build["buildargs"]["LEMBENCH_SOURCE"] == source_digest(source_root(), "cpu")
    assert "BASE_IMAGE" not in build["buildargs"]  # the Dockerfile's pinned default
    assert f"{CPU}: built" in result.output


def test_build_skips_an_image_of_the_same_sources(engine) -> None:
    engine.add_image(CPU, _current_labels())
    result = CliRunner().invoke(images_group, ["build", "cpu"])
    assert result.exit_code == 0 and "up to date" in result.output and not engine.builds
    forced = CliRunner().invoke(images_group, ["build", "cpu", "--force", "--base-image", "b:1"])
    assert forced.exit_code == 0 and engine.builds[0]["buildargs"]["BASE_IMAGE"] == "b:1"


def test_rebuild_keeps_the_recorded_base(engine) -> None:
    engine.add_image(CPU, {LABEL_VERSION: __version__, LABEL_SOURCE: "old", LABEL_BASE: "b:1"})
    result = CliRunner().invoke(images_group, ["build", "cpu"])
    assert result.exit_code == 0, result.output
    assert engine.builds[0]["buildargs"]["BASE_IMAGE"] == "b:1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["build", "vlm"], ["unknown image 'vlm'", "did you mean 'vllm'"]),
        (["build", "cpu", "vllm", "--base-image", "x:1"], ["one image"]),
        (["build", "cpu", "--build-arg", "NOEQUALS"], ["KEY=VALUE"]),
    ],
)
def test_build_input_errors(engine, args, words) -> None:
    result = CliRunner().invoke(images_group, args)
    assert isinstance(result.exception, UserError)
    for word in words:
        assert word in str(result.exception)


def test_build_error_is_one_line(engine) -> None:
    engine.build_chunks = [
        {"stream": "Step 1/9\n"},
        {"error": "pip failed:\nno network", "errorDetail": {"message": "pip failed"}},
    ]
    result = CliRunner().invoke(images_group, ["build", "cpu", "-q"])
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == f"building {CPU} failed: pip failed: no network"


def test_build_without_engine(engine) -> None:
    engine.reachable = False
    result = CliRunner().invoke(images_group, ["build", "cpu"])
    assert isinstance(result.exception, UserError)
    assert "no container engine reachable at unix:///fake/engine.sock" in str(result.exception)


def test_list(engine) -> None:
    engine.add_image(CPU, _current_labels(), repo_digests=["lembench/cpu@sha256:" + "9" * 64])
    engine.add_image("localhost/lembench/cpu:0.0.1", {LABEL_VERSION: "0.0.1"})
    result = CliRunner().invoke(images_group, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["image"]: row for row in json.loads(result.output)}
    assert rows[CPU]["present"] and rows[CPU]["status"] == "ready"
    assert rows[CPU]["digest"] == "sha256:" + "9" * 64 and rows[CPU]["size_bytes"] == 1_234_000_000
    assert not rows[image_ref("vllm")]["present"]
    assert rows[image_ref("vllm")]["status"] == "missing: lembench images build vllm"
    assert rows["lembench/cpu:0.0.1"]["status"] == "other version"
    table = CliRunner().invoke(images_group, ["list"])
    assert table.exit_code == 0 and "lembench/cpu" in table.output and "1.23 GB" in table.output


def test_doctor_without_engine(engine) -> None:
    engine.reachable = False
    result = CliRunner().invoke(doctor_command, [])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    engine_line = next(i for i, line in enumerate(lines) if "engine" in line)
    assert "NO" in lines[engine_line] and "-> install Docker" in lines[engine_line + 1]
    assert "runtime auto -> local (no container engine)" in lines[-1]


def test_doctor_with_engine_and_image(engine) -> None:
    engine.add_image(CPU, _current_labels())
    result = CliRunner().invoke(doctor_command, ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    items = {i["topic"]: i for i in report["items"]}
    assert items["engine"]["ok"] is True and "podman 4.3.1 (rootful)" in items["engine"]["detail"]
    assert items["image cpu"]["ok"] is True
    assert items["image vllm"]["ok"] is None  # needs a GPU host: not a missing piece here
    assert items["GPUs in a container"]["ok"] is None
    assert report["runtime_auto"].startswith(f"runtime auto -> docker ({CPU}")


def test_doctor_names_the_fix_for_a_missing_image(engine) -> None:
    result = CliRunner().invoke(doctor_command, [])
    assert "-> lembench images build cpu" in result.output
    assert "runtime auto -> local (image" in result.output
