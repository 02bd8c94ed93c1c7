"""The ``local`` runtime: the harness as a subprocess of the controller, in the same Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lembench.runtimes.base import (
    LOG_FILE,
    LaunchOutcome,
    Runtime,
    harness_environment,
    lifeline_environment,
    requested_secrets,
)

POLL_S = 0.25
#: After SIGTERM, how long the process group gets before SIGKILL.
TERM_GRACE_S = 10.0


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the whole process group (the harness and anything it started)."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _with_harness_source(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the folder holding the controller's own ``harness`` package first on
    PYTHONPATH: a local harness process runs the very harness code of the controller that launched
    it (a source checkout or a second worktree next to an installed copy gets its own harness, never
    another one installed in the same interpreter)."""
    import harness

    root = str(Path(harness.__file__).resolve().parents[1])
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return {**env, "PYTHONPATH": os.pathsep.join([root, *rest])}


class LocalRuntime(Runtime):
    """Runs ``python -m harness run request.json`` with this interpreter, in its own session so a
    timeout kills the whole process group."""

    name = "local"

    def __init__(
        self, command: Sequence[str] | None = None, *, keep_env_prefixes: tuple[str, ...] = ()
    ) -> None:
        # The harness entry point; ``run <request>`` is appended. Tests substitute a program of
        # their own to exercise timeouts and exit codes with real processes.
        self.command = list(command or [sys.executable, "-m", "harness"])
        # Variables kept beside the allowlist: the slurm runtime's pyxis launcher (srun) needs
        # the job's SLURM_* variables to run inside the job's allocation.
        self.keep_env_prefixes = keep_env_prefixes

    def launch(
        self, io_dir: Path, timeout_s: float, on_poll: Callable[[], None] | None = None
    ) -> LaunchOutcome:
        io_dir = io_dir.resolve()  # the harness runs with io_dir as cwd: paths must not be relative
        log_path = io_dir / LOG_FILE
        cmd = [*self.command, "run", str(io_dir / "request.json")]
        start = time.monotonic()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=io_dir,
                env=self._environment(io_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            timed_out = False
            try:
                while proc.poll() is None:
                    if time.monotonic() - start > timeout_s:
                        timed_out = True
                        _kill_group(proc)
                        break
                    if on_poll is not None:
                        on_poll()
                    time.sleep(POLL_S)
            except BaseException:  # Ctrl-C: leave no harness behind
                _kill_group(proc)
                raise
            if on_poll is not None:
                on_poll()
        return LaunchOutcome(proc.returncode, timed_out, time.monotonic() - start, log_path)

    def _environment(self, io_dir: Path) -> dict[str, str]:
        env = _with_harness_source(
            {
                **harness_environment(secrets=requested_secrets(io_dir)),
                # The harness kills its process group once we are gone (kill -9 too).
                **lifeline_environment(os.getpid()),
            }
        )
        if self.keep_env_prefixes:
            env.update(
                {k: v for k, v in os.environ.items() if k.startswith(self.keep_env_prefixes)}
            )
        return env
