"""Nothing finished is lost: per-experiment storing (Ctrl-C), the suite lock, free space and
failed stores, the harness dying with its controller (kill -9), and recovery of leftovers.

Real processes throughout: the controller is the real ``lembench`` CLI, the harness the fake
harness program (tests/helpers/fake_harness.py), which watches its controller like the real one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
from rich.console import Console

from lembench.errors import UserError
from lembench.execute import StoreWriteError, build_request, new_invocation_id, run_launches
from lembench.plan import plan
from lembench.store import RESULT_FILE, WORK_DIR, ResultStore
from lembench.store_lock import prepare_folder, suite_lock
from lembench.store_recovery import OWNER_FILE, recover
from lembench.suite import load_suite
from lembench.suite_run import run_suite
from tests.unit.conftest import make_result
from tests.unit.test_execute import FAKE_HARNESS, ScriptedRuntime

# Two experiments in one load group, two cycles: two launches of two experiments each.
SUITE = """schema_version: 1
name: safety
cycles: 2
timeout_s: 120
experiment:
  backend: pytorch
  model: smollm2-135m
sweep:
  batch_size: [1, 2]
"""

CONTROLLER = (
    "import sys; from lembench.runtimes import local; "
    f"local.LocalRuntime.__init__.__defaults__ = ([sys.executable, {str(FAKE_HARNESS)!r}],); "
    "from lembench.cli import main; main()"
)


def _suite(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    return path


def _controller(tmp_path: Path, behaviour: str, *extra: str) -> subprocess.Popen[str]:
    """The real CLI running the suite with the fake harness doing ``behaviour``."""
    env = {**os.environ, "LEMBENCH_FAKE_BEHAVIOUR": behaviour}
    cmd = [sys.executable, "-c", CONTROLLER, "run", str(_suite(tmp_path))]
    cmd += ["--results-dir", str(tmp_path / "r"), "--runtime", "local", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stored(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "r" / "safety").glob(f"*/*/{RESULT_FILE}"))


def _wait(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ctrl_c_keeps_every_finished_experiment(tmp_path: Path) -> None:
    """Before: results were stored when a launch ended, so Ctrl-C during a launch kept none."""
    proc = _controller(tmp_path, "results 2 hang")
    # Both results of the first launch are stored while its harness still runs.
    assert _wait(lambda: len(_stored(tmp_path)) == 2), "finished results were not stored"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "--resume" in err
    assert "Traceback" not in err
    assert "[2/4]" in err  # the progress moved with each stored run
    assert len(_stored(tmp_path)) == 2
    for path in _stored(tmp_path):
        assert json.loads(path.read_text())["status"] == "ok"
    assert not (tmp_path / "r" / WORK_DIR).exists()


def test_kill_9_of_the_controller_ends_the_harness(tmp_path: Path) -> None:
    """Before: the harness (and what it started) ran on to completion after the controller died."""
    proc = _controller(tmp_path, "hang")
    pids: list[Path] = []
    assert _wait(
        lambda: (
            bool(pids.extend((tmp_path / "r").glob(".work/*/*/pids.txt")) or pids)
            and pids[0].read_text().strip() != ""
        )
    )
    harness, child = map(int, pids[0].read_text().split())
    proc.kill()
    proc.communicate(timeout=30)
    assert _wait(lambda: not _alive(harness) and not _alive(child), seconds=10)


def test_second_run_into_one_suite_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "r" / "safety"
    prepare_folder(folder)
    with suite_lock(folder):
        # In-process: a second lock on the same file (another open file) is refused too.
        with (
            pytest.raises(UserError, match=rf"pid {os.getpid()} \(lembench"),
            suite_lock(folder),
        ):
            pass
        proc = _controller(tmp_path, "exit 0")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"pid {os.getpid()}" in err and "another run" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / WORK_DIR).exists()  # nothing started
    with suite_lock(folder):  # released when the holder ends its block
        pass


def test_readers_take_no_lock(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r")
    store.store(make_result(suite="safety"))
    with suite_lock(tmp_path / "r" / "safety"):
        assert len(list(store.iter_runs("safety"))) == 1


def test_too_little_free_space_refuses_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(65536, 65536 - 4096, 4096))
    suite = load_suite(_suite(tmp_path))
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    with pytest.raises(UserError, match=r"only 0\.0 MiB free.*nothing was started") as e:
        run_suite(suite, tmp_path / "r", console, console, runtime_name="local")
    assert e.value.exit_code == 2
    assert not (tmp_path / "r" / WORK_DIR).exists()


def test_results_folder_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="a part of the path is a file"):
        prepare_folder(tmp_path / "file" / "results" / "safety")
    with pytest.raises(UserError, match="path is too long"):
        prepare_folder(tmp_path / ("x" * 300) / "safety")


def test_disk_full_keeps_the_harness_output_and_resume_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: an ENOSPC while storing was a traceback, and cleanup removed the finished results."""
    suite = load_suite(_suite(tmp_path))
    store = ResultStore(tmp_path / "r")
    real_write = Path.write_bytes

    def full(self: Path, data: bytes) -> int:  # the disk fills up as the store copies the log
        if self.name == "harness.log":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(StoreWriteError, match=r"No space left.*kept in") as e:
        run_launches(suite, plan(suite), store, ScriptedRuntime("results 2"), new_invocation_id())
    assert e.value.exit_code == 1
    # The run stopped at the first failed store (the harness was stopped with it): what the
    # harness had finished is kept where the message says.
    kept = list((tmp_path / "r" / WORK_DIR).glob("*/*/results/*.json"))
    assert kept and str(kept[0].parents[1]) in str(e.value)
    assert _stored(tmp_path) == []

    monkeypatch.setattr(Path, "write_bytes", real_write)  # space freed: the next run stores them
    recovery = recover(store, "safety")
    assert len(recovery.stored) == len(kept)
    assert f"recovered {len(kept)} finished run" in (recovery.summary() or "")
    assert len(_stored(tmp_path)) == len(kept)
    assert not list((tmp_path / "r" / WORK_DIR).glob("*/*"))
    launches = plan(suite, store.completed("safety"))  # --resume runs only the rest
    assert sum(len(launch.experiments) for launch in launches) == 4 - len(kept)


def test_recovery_stores_complete_results_and_removes_the_rest(tmp_path: Path) -> None:
    suite = load_suite(_suite(tmp_path))
    store = ResultStore(tmp_path / "r")
    invocation = new_invocation_id()
    launch = plan(suite)[0]
    request = build_request(suite, launch, invocation, {"lembench_version": "0", "runtime": "x"})
    io_dir = store.work_dir(invocation) / f"{launch.group_id}-c1"
    (io_dir / "results").mkdir(parents=True)
    (io_dir / "request.json").write_text(json.dumps(request))
    (store.work_dir(invocation) / OWNER_FILE).write_text(json.dumps({"suite": "safety"}))
    first, second = request["experiments"]
    good = make_result(suite="safety", experiment_id=first["experiment_id"], run_id=first["run_id"])
    (io_dir / "results" / f"{first['experiment_id']}.json").write_text(json.dumps(good))
    (io_dir / "results" / f"{second['experiment_id']}.json").write_text('{"schema_ver')
    # A .tmp- run folder of a store that died mid-copy (its result.json not even written).
    stage = tmp_path / "r" / "safety" / second["experiment_id"] / ".tmp-x-123"
    stage.mkdir(parents=True)
    (stage / "harness.log").write_text("half")
    # Another suite's leftovers are not ours to touch (its run may be alive).
    other = store.work_dir("other-invocation")
    other.mkdir(parents=True)
    (other / OWNER_FILE).write_text(json.dumps({"suite": "another"}))

    recovery = recover(store, "safety")
    assert [p.name for p in recovery.stored] == [first["run_id"]]
    assert stage in recovery.removed and not stage.exists()
    assert not store.work_dir(invocation).exists()
    assert other.exists()
    assert [r.run_id for r in store.iter_runs("safety")] == [first["run_id"]]


def test_cli_run_reports_recovery(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r")
    run_dir = store.store(make_result(suite="safety"))
    stage = run_dir.parent / ".tmp-leftover-1"
    shutil.copytree(run_dir, stage)
    shutil.rmtree(run_dir)  # the controller died between assembling the run and renaming it
    proc = _controller(tmp_path, "exit 0")
    _, err = proc.communicate(timeout=60)
    assert "recovered 1 finished run" in err
    assert run_dir.is_dir() and not stage.exists()


def test_lifeline_notices_a_stale_heartbeat_and_a_dead_parent(tmp_path: Path) -> None:
    from harness.contract import lifeline
    from harness.contract.io import HEARTBEAT_FILE

    beat = tmp_path / HEARTBEAT_FILE
    assert lifeline.controller_gone(tmp_path, None, 30) is None  # no heartbeat yet
    beat.write_bytes(b"")
    assert lifeline.controller_gone(tmp_path, None, 30) is None
    os.utime(beat, (time.time() - 31, time.time() - 31))
    assert "heartbeat stopped" in (lifeline.controller_gone(tmp_path, None, 30) or "")
    assert "ended" in (lifeline.controller_gone(tmp_path, os.getppid() + 1, None) or "")
    assert lifeline.controller_gone(tmp_path, os.getppid(), None) is None
    gone: list[bool] = []
    thread = lifeline.start(
        tmp_path, {"LEMBENCH_LIFELINE_S": "30"}, on_gone=lambda: gone.append(True), check_s=0.01
    )
    assert thread is not None
    thread.join(5)
    assert gone == [True]
    assert lifeline.start(tmp_path, {}) is None  # run by hand: nothing watched
