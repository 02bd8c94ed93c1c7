"""A small real suite (SmolLM2, 4 array tasks) through a real Slurm: sbatch, the local inner
runtime, a task killed mid-run with scancel (its failure record keeps Slurm's state), ``lembench
status``, ``--resume``; then the same suite with the podman inner runtime (needs the container
tier's engine and image)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.contract.results import validation_problem

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "slurm" / "small.yaml"
#: A cap per wait, not a target: an idle 2-core node finishes a task in well under a minute (on a
#: machine at load 15 a container task took ~2 min).
WAIT_S = 600


def lembench(*args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LEMBENCH_SLURM_POLL_S": "1"},
    )


def stored(results: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("slurm-small/*/*/result.json"))]


def invocation(results: Path) -> Path:
    (manifest,) = sorted(results.glob(".slurm/slurm-small/*/manifest.json"))[-1:]
    return manifest.parent


def wait_for(condition, what: str, timeout: float = WAIT_S) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.5)


def test_local_inner_runtime_scancel_status_and_resume(tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = lembench(
        "run", str(SUITE), "--runtime", "slurm", "--no-wait", "--results-dir", str(results)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inv = invocation(results)
    job = json.loads((inv / "manifest.json").read_text())["arrays"][0]["job_id"]
    assert f"submitted job array {job}" in proc.stdout

    # Kill task 1 while its harness runs (its events file shows the harness started).
    wait_for(lambda: (inv / "tasks" / "1" / "events.jsonl").exists(), "task 1 to start")
    subprocess.run(["scancel", f"{job}_1"], check=True, timeout=30)

    def finished() -> bool:
        status = lembench("status", str(results), timeout=120)
        assert status.returncode == 0, status.stderr
        return all((inv / "tasks" / str(n) / "done.json").exists() for n in range(4))

    wait_for(finished, "every task to end")
    status = lembench("status", str(results), timeout=120)
    assert "CANCELLED x1" in status.stdout, status.stdout

    runs = stored(results)
    assert len(runs) == 4 and all(validation_problem(r) is None for r in runs)
    ok = [r for r in runs if r["status"] == "ok"]
    (failed,) = [r for r in runs if r["status"] == "failed"]
    assert len(ok) == 3 and failed["cycle"] == 2  # sequential order: task 1 is cycle 2
    assert failed["error"]["reason"] == "crashed"
    assert "State=CANCELLED" in failed["error"]["message"]
    assert failed["provenance"]["slurm"]["state"] == "CANCELLED"
    script = next(inv.glob("*.sbatch"))
    sha = hashlib.sha256(script.read_bytes()).hexdigest()
    for run in ok:
        slurm = run["provenance"]["slurm"]
        assert slurm["array_job_id"] == job and slurm["partition"] == "debug"
        assert slurm["node"] == socket.gethostname().split(".")[0]
        assert slurm["sbatch_sha256"] == sha and slurm["array_task_id"] in (0, 2, 3)
        assert run["provenance"]["controller"]["runtime"] == "slurm+local"
        assert run["metrics"]["tokens_out"] > 0

    # --resume submits only what is not stored yet: the cancelled cycle.
    proc = lembench(
        "run", str(SUITE), "--runtime", "slurm", "--resume", "--results-dir", str(results)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 already stored, skipped" in proc.stdout and "1 array tasks" in proc.stdout
    again = [r for r in stored(results) if r["status"] == "ok" and r["cycle"] == 2]
    assert len(again) == 1 and again[0]["provenance"]["slurm"]["array_task_id"] == 0


def _engine_problem() -> str | None:
    """What keeps the docker inner runtime from running here: no engine, or no cpu image for
    this lembench version (what DockerRuntime itself requires; the container tier also insists
    on an image built from this very checkout, which does not matter for what this test checks:
    the harness in the image, its results and their Slurm provenance)."""
    from harness import __version__
    from lembench.runtimes.engine import EngineError, choose_image, connect, get_image

    try:
        client, _ = connect(timeout=10)
    except EngineError as exc:
        return str(exc)
    try:
        get_image(client, choose_image("pytorch", {}, gpu=False), __version__)
    except EngineError as exc:
        return f"{exc} (CI: .ci/podman.sh builds it)"
    finally:
        client.close()
    return None


def test_podman_inner_runtime(tmp_path: Path) -> None:
    problem = _engine_problem()
    if problem:
        if os.environ.get("LEMBENCH_REQUIRE_ENGINE", "") not in ("", "0", "false"):
            pytest.fail(f"podman inner runtime needs the container tier's engine: {problem}")
        pytest.skip(f"podman inner runtime: {problem}")
    results = tmp_path / "results"
    proc = lembench(
        "run", str(SUITE), "--runtime", "slurm", "--inner-runtime", "docker",
        "--results-dir", str(results),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = stored(results)
    assert len(runs) == 4 and all(r["status"] == "ok" for r in runs), [r.get("error") for r in runs]
    for run in runs:
        assert run["provenance"]["controller"]["runtime"] == "slurm+docker"
        assert run["environment"]["container_image_digest"]
        assert run["provenance"]["slurm"]["partition"] == "debug"
