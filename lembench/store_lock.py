"""Guarding a suite's results folder for the duration of a run.

Two runs storing into one suite's folder at once measure each other's load and their runs get
summarised together as if they were repeats, so a run holds an exclusive lock on
``<results>/<suite>/.lock`` from before it plans (``--resume`` reads what is stored) until it ends.
The lock is an ``flock`` on an open file: the kernel releases it when the holder dies, even by
``kill -9``, so a crashed run never leaves a stale lock behind. Readers (results, report, advise)
take no lock: the store's atomic renames already give them whole runs or nothing.

Before anything starts, the folder must be writable and its filesystem must have room
(``MIN_FREE_BYTES``): a run that cannot store its results should not start measuring.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.contract.io import now_iso
from lembench.errors import UserError

LOCK_FILE = ".lock"
#: Free space a run needs before it starts: result files are small, but power timelines and
#: harness logs of a long suite reach tens of MiB.
MIN_FREE_BYTES = 64 * 1024 * 1024


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def prepare_folder(folder: Path, min_free: int = MIN_FREE_BYTES) -> None:
    """Create ``folder`` (a suite's results folder) and check it can take a run's results;
    UserError (one line, exit 2) when it cannot: under a file, read-only, not permitted, or its
    filesystem has less than ``min_free`` bytes free."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        why = {
            errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EROFS: "the filesystem is read-only",
            errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
            errno.ENOSPC: "no space left on the device",
            errno.ENAMETOOLONG: "the path is too long",
        }.get(e.errno, e.strerror or str(e))
        raise UserError(
            f"cannot store results here: {why}; choose another folder with --results-dir",
            file=folder,
        ) from None
    free = shutil.disk_usage(folder).free
    if free < min_free:
        raise UserError(
            f"only {_mib(free)} free on this filesystem, a run needs at least {_mib(min_free)} "
            "for its results, timelines and logs; free some space or choose another folder "
            "with --results-dir (nothing was started)",
            file=folder,
        )


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text("utf-8"))
        return f"pid {info['pid']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def suite_lock(folder: Path) -> Iterator[None]:
    """Hold the run lock of ``folder`` (a suite's results folder) while the block runs; UserError
    naming the holder's pid and command when another run holds it."""
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"cannot create the run lock: {e.strerror or e}", file=path) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another run is storing into this suite's results: {_holder(path)}; wait for it "
                "to end (two runs at once measure each other's load)",
                file=folder,
            ) from None
        # Who holds it, for the message another run gets (written after locking: only the
        # holder writes).
        info = {"pid": os.getpid(), "command": " ".join(["lembench", *sys.argv[1:]])}
        info["since"] = now_iso()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
