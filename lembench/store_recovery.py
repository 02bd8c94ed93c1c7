"""Recovering what a dead run left in the store.

A controller killed hard (``kill -9``, a power cut, a full disk) can leave two kinds of leftovers:
io folders under ``<results>/.work/<invocation>/`` holding results the harness wrote but nobody
stored, and ``.tmp-*`` run folders the store was assembling. The next run of the suite (holding
its lock, so nothing else is writing there) stores every complete, valid result it finds in them
and removes the rest, and says what it did.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contract.io import RESULTS_DIR, TIMELINES_DIR
from harness.contract.results import validation_problem
from lembench.errors import UserError
from lembench.store import (
    LOG_FILE,
    RESULT_FILE,
    TIMELINE_FILE,
    WORK_DIR,
    ResultStore,
    StoreError,
    fsync_dir,
)

#: Written by the controller into ``.work/<invocation>/``: which suite the io folders belong to.
OWNER_FILE = "owner.json"


@dataclass
class Recovery:
    """What ``recover`` found: runs it stored and leftovers it removed."""

    stored: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    def summary(self) -> str | None:
        """One line for the console, or None when there was nothing left over."""
        if not self.stored and not self.removed:
            return None
        return (
            f"recovered {len(self.stored)} finished run{'s' * (len(self.stored) != 1)} left by an"
            f" interrupted run; removed {len(self.removed)} leftover folder"
            f"{'s' * (len(self.removed) != 1)} (with anything incomplete in them)"
        )


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _suite_of(invocation: Path) -> str | None:
    """The suite an invocation's scratch folder belongs to (owner.json, else a request)."""
    owner = _load(invocation / OWNER_FILE)
    if isinstance(owner, dict) and isinstance(owner.get("suite"), str):
        return owner["suite"]
    for request in sorted(invocation.glob("*/request.json")):
        doc = _load(request)
        if isinstance(doc, dict) and isinstance(doc.get("suite"), str):
            return doc["suite"]
    return None


def _recover_io(store: ResultStore, io_dir: Path, recovery: Recovery) -> None:
    """Store the complete, valid results of one io folder that are not stored yet."""
    request = _load(io_dir / "request.json")
    if not isinstance(request, dict):
        return
    wanted = {
        (e.get("experiment_id"), e.get("run_id"))
        for e in request.get("experiments") or []
        if isinstance(e, dict)
    }
    for path in sorted((io_dir / RESULTS_DIR).glob("*.json")):
        result = _load(path)
        if not isinstance(result, dict) or validation_problem(result) is not None:
            continue  # half a result, or not one: the experiment runs again on --resume
        if (result.get("experiment_id"), result.get("run_id")) not in wanted:
            continue  # untrusted: only the runs this request asked for
        if store.run_dir(result).exists():
            continue
        timeline = io_dir / TIMELINES_DIR / f"{result['experiment_id']}.jsonl"
        files = {TIMELINE_FILE: timeline} if timeline.is_file() else None
        try:
            recovery.stored.append(store.store(result, log=io_dir / LOG_FILE, files=files))
        except (StoreError, ValueError):
            continue
        except OSError as e:  # the disk is still full: keep the folder for the next try
            raise UserError(
                f"cannot store the results an interrupted run left in {io_dir}: "
                f"{e.strerror or e}; they stay there until a run of this suite can store them",
                file=store.root,
            ) from None


def _recover_stage(store: ResultStore, stage: Path, recovery: Recovery) -> None:
    """A ``.tmp-*`` run folder: moved into place when it holds a whole valid result (it was
    being renamed when the controller died), else removed."""
    result = _load(stage / RESULT_FILE)
    if isinstance(result, dict) and validation_problem(result) is None:
        final = store.run_dir(result)
        if final.parent == stage.parent and not final.exists():
            stage.rename(final)
            fsync_dir(final.parent)
            recovery.stored.append(final)
            return
    shutil.rmtree(stage, ignore_errors=True)
    recovery.removed.append(stage)


def recover(store: ResultStore, suite: str) -> Recovery:
    """Store what dead runs of ``suite`` left behind and remove the rest. Call it holding the
    suite's lock (lembench.store_lock), so no live run of the suite owns these folders."""
    recovery = Recovery()
    suite_dir = store.root / suite
    if suite_dir.is_dir():
        for stage in sorted(suite_dir.glob("*/.tmp-*")):
            if stage.is_dir():
                _recover_stage(store, stage, recovery)
    work = store.root / WORK_DIR
    if not work.is_dir():
        return recovery
    for invocation in sorted(work.iterdir()):
        if not invocation.is_dir() or _suite_of(invocation) != suite:
            continue  # another suite's run, maybe alive: its own next run recovers it
        for io_dir in sorted(p for p in invocation.iterdir() if p.is_dir()):
            _recover_io(store, io_dir, recovery)
            shutil.rmtree(io_dir, ignore_errors=True)
            recovery.removed.append(io_dir)
        shutil.rmtree(invocation, ignore_errors=True)
    return recovery
