"""The harness dies with its controller.

A controller killed hard (``kill -9``, OOM killer, a closed SSH session) cannot stop the harness
it launched; left alone, the harness would measure on for minutes, and a ``--resume`` started
meanwhile would measure alongside it (each run loading the machine for the other). So the harness
watches its controller from a daemon thread and, once it is gone, kills its own process group
(itself and whatever it started, e.g. an inference server) at once:

- ``LEMBENCH_CONTROLLER_PID``: the controller started us (the local runtime). When our parent
  process changes (we were re-parented to init or a subreaper), it died; a wrapper between us
  (a shell) is our parent then, and the heartbeat covers the controller. A controller already
  gone when we start is gone.
- ``LEMBENCH_LIFELINE_S``: the controller touches ``controller.alive`` in the io folder about once
  a second while it waits (any runtime: a container sees the io folder, not the controller's
  pid). A heartbeat older than this many seconds means it is gone.

Neither set (the harness run by hand): nothing is watched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.contract.io import HEARTBEAT_FILE

ENV_PARENT = "LEMBENCH_CONTROLLER_PID"
ENV_STALE = "LEMBENCH_LIFELINE_S"
#: How often the thread looks.
CHECK_S = 0.5

log = logging.getLogger("harness.lifeline")


def controller_gone(io_dir: Path, parent_pid: int | None, stale_s: float | None) -> str | None:
    """Why the controller is gone (one line), or None while it is alive (or not watched)."""
    if parent_pid is not None and os.getppid() != parent_pid:
        return f"the controller (pid {parent_pid}) ended"
    if stale_s is not None:
        try:
            age = time.time() - (io_dir / HEARTBEAT_FILE).stat().st_mtime
        except OSError:
            return None  # not written yet; the controller writes it before launching
        if age > stale_s:
            return f"the controller's heartbeat stopped {age:.0f} s ago (limit {stale_s:g} s)"
    return None


def _die() -> None:
    # Our own process group only when we lead it (the runtimes start us in a new session); else
    # just this process, never the group of whoever ran us by hand.
    if os.getpgrp() == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os._exit(137)


def _settings(environ: dict[str, str]) -> tuple[int | None, float | None]:
    parent = stale = None
    with contextlib.suppress(KeyError, ValueError):
        parent = int(environ[ENV_PARENT])
    try:
        value = float(environ[ENV_STALE])
        stale = value if value > 0 and value != float("inf") else None
    except (KeyError, ValueError):
        pass
    return parent, stale


def start(
    io_dir: Path,
    environ: dict[str, str] | None = None,
    on_gone: Callable[[], None] = _die,
    check_s: float = CHECK_S,
) -> threading.Thread | None:
    """Watch the controller from a daemon thread (see the module doc); returns the thread, or
    None when the environment asks for no watching. ``on_gone`` ends the process (tests pass
    their own)."""
    controller, stale = _settings(dict(os.environ if environ is None else environ))
    if controller is None and stale is None:
        return None
    parent = None
    if controller is not None:
        parent = os.getppid()  # the process that started us, whoever it is
        try:
            os.kill(controller, 0)
        except ProcessLookupError:
            parent = -1  # it died before we got here: never our parent again
        except PermissionError:
            pass

    def watch() -> None:
        while True:
            why = controller_gone(io_dir, parent, stale)
            if why is not None:
                log.error("stopping: %s; nobody would store this harness's results", why)
                on_gone()
                return
            time.sleep(check_s)

    thread = threading.Thread(target=watch, name="lembench-lifeline", daemon=True)
    thread.start()
    return thread
