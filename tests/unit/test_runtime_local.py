"""The local runtime with real processes: exit codes, logs, environment allowlist, timeouts."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from lembench.runtimes.base import ENV_FIXED, harness_environment
from lembench.runtimes.local import LocalRuntime

FAKE_HARNESS = Path(__file__).resolve().parents[1] / "helpers" / "fake_harness.py"


def _runtime() -> LocalRuntime:
    return LocalRuntime(command=[sys.executable, str(FAKE_HARNESS)])


def _io(tmp_path: Path, behaviour: str) -> Path:
    (tmp_path / "request.json").write_text("{}")
    (tmp_path / "behaviour.txt").write_text(behaviour)
    return tmp_path


def test_exit_code_and_log_are_kept(tmp_path: Path) -> None:
    outcome = _runtime().launch(_io(tmp_path, "exit 66"), timeout_s=60)
    assert outcome.returncode == 66
    assert not outcome.timed_out
    assert "fake harness: exit 66" in outcome.log_path.read_text()


def test_environment_is_allowlisted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SECRET_PASSWORD", "x")
    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    monkeypatch.setenv("LEMBENCH_CACHE_DIR", "/tmp/c")
    io_dir = _io(tmp_path, "env")
    assert _runtime().launch(io_dir, timeout_s=60).returncode == 0
    env = json.loads((io_dir / "env.json").read_text())
    assert "SOME_SECRET_PASSWORD" not in env
    assert env["HF_TOKEN"] == "hf_abc"  # secrets pass by name, into the environment only
    assert env["LEMBENCH_CACHE_DIR"] == "/tmp/c"
    for key, value in ENV_FIXED.items():
        assert env[key] == value


def test_harness_environment_filters() -> None:
    env = harness_environment({"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "k", "LEMBENCH_X": "1"})
    assert env["PATH"] == "/bin" and env["LEMBENCH_X"] == "1"
    assert "AWS_SECRET_ACCESS_KEY" not in env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    io_dir = _io(tmp_path, "hang")
    start = time.monotonic()
    outcome = _runtime().launch(io_dir, timeout_s=3)
    assert outcome.timed_out
    assert time.monotonic() - start < 20
    parent, child = map(int, (io_dir / "pids.txt").read_text().split())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(parent)
    assert not _alive(child), "the harness's child process survived the timeout"


def test_default_command_is_this_interpreters_harness() -> None:
    assert LocalRuntime().command == [sys.executable, "-m", "harness"]


def test_sigterm_to_the_controller_stops_the_harness(tmp_path: Path) -> None:
    """`kill <lembench pid>` must not orphan the harness (it runs in its own session)."""
    import signal
    import subprocess

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "schema_version: 1\nname: t\nexperiment:\n  backend: pytorch\n  model: smollm2-135m\n"
    )
    script = (
        "import sys; from lembench.runtimes import local; "
        f"local.LocalRuntime.__init__.__defaults__ = ([sys.executable, {str(FAKE_HARNESS)!r}],); "
        "from lembench.cli import main; main()"
    )
    # The fake harness hangs (behaviour.txt is read from the io folder: make every io folder hang).
    env = {**__import__("os").environ, "LEMBENCH_FAKE_BEHAVIOUR": "hang"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            "run",
            str(suite),
            "--results-dir",
            str(tmp_path / "r"),
            "--runtime",
            "local",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    pids_file = None
    while time.monotonic() < deadline and pids_file is None:
        found = list((tmp_path / "r").glob(".work/*/*/pids.txt"))
        pids_file = found[0] if found and found[0].read_text().strip() else None
        time.sleep(0.2)
    assert pids_file is not None, proc.stderr.read() if proc.poll() is not None else "no harness"
    parent, child = map(int, pids_file.read_text().split())
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 130
    deadline = time.monotonic() + 10
    while (_alive(parent) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(parent) and not _alive(child)


def test_local_harness_runs_the_controllers_own_harness_code(tmp_path, monkeypatch) -> None:
    """The harness process gets the folder of the controller's ``harness`` package first on its
    PYTHONPATH, and keeps the user's entries after it."""
    import os
    from pathlib import Path

    import harness
    from lembench.runtimes.local import _with_harness_source

    root = str(Path(harness.__file__).resolve().parents[1])
    env = _with_harness_source(harness_environment({"PYTHONPATH": f"/x{os.pathsep}{root}"}))
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/x"]
