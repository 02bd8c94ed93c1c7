"""The docker runtime for real: the quickstart grid (reduced: 2 batch sizes x 1 cycle x 4 prompts)
in the real `cpu` image on a real engine, compared with the local runtime on the same suite; then
the faults (unreachable engine, missing image, image of another harness version, timeout), each
stored as failed with its reason while the suite goes on; and the images/doctor commands."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import __version__
from harness.contract.results import validation_problem
from lembench.imagedefs import LABEL_VERSION, image_ref
from lembench.runtimes.engine import image_digest

ROOT = Path(__file__).resolve().parents[2]
CPU = image_ref("cpu")


def lembench(*args: str, env: dict[str, str] | None = None, timeout: float = 900):
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def stored(results_dir: Path, suite: str) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text()) for p in sorted((results_dir / suite).glob("*/*/result.json"))
    ]


def reduced_quickstart(folder: Path, **changes: Any) -> Path:
    """suites/quickstart.yaml with 1 cycle and 4 prompts (same model, precision, batch sizes)."""
    suite = yaml.safe_load((ROOT / "suites" / "quickstart.yaml").read_text())
    suite["name"] = "quickstart-container"
    suite["cycles"] = 1
    suite["experiment"]["workload"]["num_prompts"] = 4
    suite.setdefault("measurement", {})["idle_baseline_s"] = 2
    suite.update(changes)
    path = folder / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("grid")
    suite = reduced_quickstart(folder)
    docker = lembench(
        "run", str(suite), "--results-dir", str(folder / "docker"), "--runtime", "docker"
    )
    local = lembench(
        "run", str(suite), "--results-dir", str(folder / "local"), "--runtime", "local"
    )
    return folder, docker, local


def test_quickstart_grid_runs_in_the_image(grid, client) -> None:
    folder, docker, _ = grid
    assert docker.returncode == 0, docker.stdout + docker.stderr
    assert "runtime: docker" in docker.stdout and "2 runs stored" in docker.stdout
    digest = image_digest(client.images.get(CPU))
    results = stored(folder / "docker", "quickstart-container")
    assert sorted(r["config"]["batch_size"] for r in results) == [1, 4]
    for r in results:
        assert validation_problem(r) is None and r["status"] == "ok"
        env = r["environment"]
        assert env["container_image_digest"] == digest
        assert env["in_container"] is True
        assert env["packages"]["lembench"] == __version__
        assert r["provenance"]["controller"]["runtime"] == "docker"
        assert r["provenance"]["harness_version"] == __version__
        run_dir = folder / "docker" / "quickstart-container" / r["experiment_id"] / r["run_id"]
        assert (run_dir / "harness.log").stat().st_size > 0
        assert (run_dir / "timeline.jsonl").exists()
        assert (run_dir / "result.json").stat().st_uid == os.getuid()  # the caller's files
    assert not (folder / "docker" / ".work").exists()
    leftovers = client.containers.list(all=True, filters={"label": "dev.lembench.suite"})
    assert not leftovers, [c.name for c in leftovers]


def test_token_counts_agree_with_the_local_runtime(grid) -> None:
    folder, docker, local = grid
    assert docker.returncode == 0 and local.returncode == 0, local.stdout + local.stderr

    def counts(runtime: str) -> dict[int, tuple]:
        return {
            r["config"]["batch_size"]: (
                r["metrics"]["num_requests"],
                r["metrics"]["tokens_in"],
                r["metrics"]["tokens_out"],
                [(q["tokens_in"], q["tokens_out"]) for q in r["requests"]],
            )
            for r in stored(folder / runtime, "quickstart-container")
        }

    in_docker, in_process = counts("docker"), counts("local")
    assert in_docker == in_process
    assert in_docker[1][1:3] == (4 * 32, 4 * 32)
    for r in stored(folder / "local", "quickstart-container"):
        assert r["environment"]["container_image_digest"] is None


def _failed_run(tmp_path: Path, *args: str, env: dict[str, str] | None = None, **changes: Any):
    suite = reduced_quickstart(tmp_path, name="fault", **changes)
    proc = lembench(
        "run",
        str(suite),
        "--results-dir",
        str(tmp_path / "r"),
        "--runtime",
        "docker",
        *args,
        env=env,
        timeout=300,
    )
    results = stored(tmp_path / "r", "fault")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert len(results) == 2 and "Traceback" not in proc.stderr
    for r in results:
        assert validation_problem(r) is None and r["status"] == "failed"
        assert "\n" not in r["error"]["message"]
    return proc, results


def test_unreachable_engine_fails_every_run_with_the_reason(tmp_path: Path) -> None:
    bogus = f"unix://{tmp_path}/no-engine.sock"
    _, results = _failed_run(tmp_path, env={"DOCKER_HOST": bogus})
    for r in results:
        assert r["error"]["reason"] == "backend_unavailable"
        assert bogus in r["error"]["message"] and "no container engine" in r["error"]["message"]


def test_auto_falls_back_to_local_without_an_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lembench.runtimes import LocalRuntime, select_runtime

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    runtime, notice = select_runtime({"runtime": "auto"})
    assert isinstance(runtime, LocalRuntime)
    assert notice.startswith("runtime auto: local (no container engine reachable at unix://")


def test_auto_picks_docker_with_engine_and_image() -> None:
    from lembench.runtimes import select_runtime
    from lembench.runtimes.docker import DockerRuntime

    runtime, notice = select_runtime({"runtime": "auto", "gpus": "all", "image": None})
    assert isinstance(runtime, DockerRuntime), notice
    assert notice.startswith("runtime auto: docker (engine at ") and CPU in notice


def test_missing_image_fails_every_run_with_the_reason(tmp_path: Path) -> None:
    _, results = _failed_run(tmp_path, image="lembench-test/no-such-image:0")
    for r in results:
        assert r["error"]["reason"] == "backend_unavailable"
        assert "lembench-test/no-such-image:0 is not built" in r["error"]["message"]


@pytest.fixture
def old_image(client):
    """The cpu image relabelled as built for another lembench version."""
    tag = "lembench-test/other-version:1"
    dockerfile = f'FROM {CPU}\nLABEL {LABEL_VERSION}="0.0.0-other"\n'.encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False)
    yield tag
    client.images.remove(tag, force=True)


def test_image_of_another_version_is_refused(tmp_path: Path, old_image: str, client) -> None:
    _, results = _failed_run(tmp_path, image=old_image)
    for r in results:
        message = r["error"]["message"]
        assert r["error"]["reason"] == "backend_unavailable"
        assert "0.0.0-other" in message and "lembench images build cpu" in message
    assert not client.containers.list(all=True, filters={"label": "dev.lembench.suite=fault"})


def test_timeout_stops_the_container_and_keeps_its_log(tmp_path: Path, client) -> None:
    _, results = _failed_run(tmp_path, timeout_s=4)
    for r in results:
        assert r["error"]["reason"] == "timeout"
    logs = list((tmp_path / "r" / "fault").glob("*/*/harness.log"))
    assert logs and all(p.exists() for p in logs)
    assert not client.containers.list(all=True, filters={"label": "dev.lembench.suite=fault"})


def test_images_list_and_doctor(client) -> None:
    listed = lembench("images", "list", "--json", timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {row["image"]: row for row in json.loads(listed.stdout)}
    cpu = rows[CPU]
    assert cpu["present"] and cpu["version"] == __version__
    assert cpu["digest"] == image_digest(client.images.get(CPU)) and cpu["size_bytes"] > 1e8
    assert not rows[image_ref("vllm")]["present"] or rows[image_ref("vllm")]["digest"]
    doctor = lembench("doctor", timeout=300)
    assert doctor.returncode == 0, doctor.stderr
    assert "engine" in doctor.stdout and "ok " in doctor.stdout
    assert f"{CPU}" in doctor.stdout
    assert "runtime auto -> docker" in doctor.stdout
    up_to_date = lembench("images", "build", "cpu", timeout=120)
    assert up_to_date.returncode == 0, up_to_date.stderr
    assert "up to date" in up_to_date.stdout


def test_images_build_through_the_engine_api(client) -> None:
    """A forced rebuild through the SDK, on the base the image was built on: the layers of the
    first build serve as cache (no network needed), the labels are set by `lembench images`."""
    from lembench.imagedefs import LABEL_BASE, LABEL_SOURCE, source_digest, source_root

    base = client.images.get(CPU).labels[LABEL_BASE]
    proc = lembench(
        "images",
        "build",
        "cpu",
        "--force",
        "--base-image",
        base,
        "--network",
        "host",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{CPU}: built" in proc.stdout
    labels = client.images.get(CPU).labels
    assert labels[LABEL_SOURCE] == source_digest(source_root(), "cpu")
    assert labels[LABEL_VERSION] == __version__ and labels[LABEL_BASE] == base
