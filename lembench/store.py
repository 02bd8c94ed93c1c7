"""The append-only results store.

Layout: ``<root>/<suite>/<experiment_id>/<run_id>/result.json`` plus ``harness.log`` (and
``raw_result.json`` when the harness wrote something invalid). A run folder is assembled under a
temporary name and renamed into place in one step, so readers see whole runs or nothing, and an
existing run is never overwritten (POSIX rename refuses a non-empty target).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contract.io import now_iso, write_json_atomic
from harness.contract.redact import Redactor
from harness.contract.results import validation_problem
from lembench import __version__

RESULT_FILE = "result.json"
LOG_FILE = "harness.log"
RAW_FILE = "raw_result.json"
TIMELINE_FILE = "timeline.jsonl"
WORK_DIR = ".work"
#: Masks what needs no configured secret to recognise: credentials inside URLs.
_PUBLIC = Redactor()
TRASH_DIR = ".trash"
#: Written into a new results folder: results are data, not source. Without it every run after the
#: first recorded ``git_dirty: true`` (the previous runs were untracked files in the work tree).
GITIGNORE = (
    "# Written by lembench: results are data, not source (remove this file to track them).\n*\n"
)


class StoreError(RuntimeError):
    """The store refused a write (e.g. the run folder already exists)."""


@dataclass(frozen=True)
class SkippedFile:
    """A result file a reader could not use, and why (one line)."""

    path: Path
    why: str


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a crash right after it must not undo it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoredRun:
    """A run found in the store."""

    path: Path  # the run folder
    result: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.result["run_id"]

    @property
    def experiment_id(self) -> str:
        return self.result["experiment_id"]


class ResultStore:
    """Results under ``root`` (default ``results/``)."""

    def __init__(self, root: Path) -> None:
        # Absolute: io folders under it are handed to harness processes running elsewhere (cwd).
        self.root = Path(root).resolve()
        #: Result files the readers skipped (malformed, truncated, invalid), by path. Each reader
        #: counts them in its summary line; ``lembench results check`` lists them.
        self.skipped: dict[Path, SkippedFile] = {}

    def work_dir(self, invocation_id: str) -> Path:
        """Scratch folder for the io folders of one invocation (removed as runs are stored)."""
        return self.root / WORK_DIR / invocation_id

    def run_dir(self, result: dict[str, Any]) -> Path:
        return self.root / result["suite"] / result["experiment_id"] / result["run_id"]

    def store(
        self,
        result: dict[str, Any],
        log: Path | None = None,
        raw: bytes | None = None,
        files: dict[str, Path] | None = None,
        redactor: Redactor | None = None,
    ) -> Path:
        """Validate ``result`` and store it with its log and ``files`` (stored name -> source, e.g.
        the power timeline); returns the run folder. ``redactor`` masks the launch's secrets in the
        result, the log and the raw bytes (URL credentials are masked always).

        The result is stamped with ``provenance.stored_by``. An invalid result raises ValueError:
        the caller stores a failure record instead (and keeps the raw bytes via ``raw``).
        """
        redactor = redactor or Redactor()
        result = redactor.document(result)
        problem = validation_problem(result)
        if problem is not None:
            raise ValueError(f"result does not validate against result.schema.json: {problem}")
        final = self.run_dir(result)
        if final.exists():
            raise StoreError(f"{final} already exists; runs are never overwritten")
        result = {**result, "provenance": {**result["provenance"]}}
        result["provenance"]["stored_by"] = {
            "lembench_version": __version__,
            "stored_at": now_iso(),
            "validated": True,
        }
        stage = final.parent / f".tmp-{result['run_id']}-{os.getpid()}"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        try:
            write_json_atomic(stage / RESULT_FILE, result)
            if log is not None and log.exists():
                (stage / LOG_FILE).write_bytes(redactor.bytes(log.read_bytes()))
            if raw is not None:
                (stage / RAW_FILE).write_bytes(redactor.bytes(raw))
            for name, source in (files or {}).items():
                shutil.copyfile(source, stage / name)
            fsync_dir(stage)
            os.rename(stage, final)
            fsync_dir(final.parent)  # the rename itself survives a crash or power loss
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return final

    def ensure_gitignore(self) -> None:
        """Create the folder with a ``.gitignore`` ignoring everything in it, unless it already
        has one (a user's own is left alone)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".gitignore"
        if not path.exists():
            path.write_text(GITIGNORE, "utf-8")

    def trash(self, run: StoredRun) -> Path:
        """Move a stored run into ``<root>/.trash/<suite>/<experiment>/<run>`` (never deleted; the
        store skips dot folders, so it leaves every listing and report). Returns its new path."""
        rel = run.path.resolve().relative_to(self.root)
        target = self.root / TRASH_DIR / rel
        n = 1
        while target.exists():  # the same run trashed before and stored again
            n += 1
            target = self.root / TRASH_DIR / rel.parent / f"{rel.name}.{n}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(run.path, target)
        return target

    def iter_runs(self, suite: str | None = None) -> Iterator[StoredRun]:
        """Stored runs (of one suite, or all), in path order, upgraded to the current result
        schema (lembench.results.migrate; files are not rewritten) and valid against it.

        A file that cannot be used (unreadable, truncated, not an object, invalid) is skipped and
        recorded in ``self.skipped`` with why; readers count it in their summary line. A result
        newer than this lembench raises UserError ("upgrade lembench") rather than silently
        dropping runs from summaries."""
        from lembench.errors import UserError
        from lembench.results.migrate import NewerSchemaError, upgrade

        if not self.root.is_dir():
            return
        suites = [self.root / suite] if suite else sorted(self.root.iterdir())
        for suite_dir in suites:
            # ".work" is scratch; "_reproductions" holds reproduce records (suite names cannot
            # start with "." or "_", so neither is ever a suite's folder).
            if not suite_dir.is_dir() or suite_dir.name.startswith((".", "_")):
                continue
            for path in sorted(suite_dir.glob(f"*/*/{RESULT_FILE}")):
                if path.parent.name.startswith("."):
                    continue  # a run being assembled (or left over by a crash: see recovery)
                try:
                    result = upgrade(json.loads(path.read_text("utf-8")))
                except NewerSchemaError as e:
                    raise UserError(str(e), file=path) from None
                except OSError as e:
                    self._skip(path, f"cannot read: {e.strerror or e}")
                    continue
                except RecursionError:
                    self._skip(path, "nested too deeply to be a result")
                    continue
                except ValueError as e:  # not JSON (truncated), not UTF-8, no schema_version
                    self._skip(path, _first_line(e))
                    continue
                problem = validation_problem(result)
                if problem is not None:
                    self._skip(path, f"invalid against result.schema.json: {problem}")
                    continue
                # Runs stored before URL credentials were masked: none reach a reader's output.
                yield StoredRun(path.parent, _PUBLIC.document(result))

    def _skip(self, path: Path, why: str) -> None:
        self.skipped[path] = SkippedFile(path, why)

    def skipped_note(self) -> str | None:
        """The summary line's part about skipped files, or None when every file was usable."""
        n = len(self.skipped)
        if not n:
            return None
        return (
            f"{n} result file{'s' * (n != 1)} skipped as unusable "
            "(`lembench results check` lists them)"
        )

    def completed(self, suite: str) -> frozenset[tuple[str, int]]:
        """(experiment_id, cycle) pairs of ``suite`` with a successful stored run."""
        return frozenset(
            (r.experiment_id, r.result["cycle"])
            for r in self.iter_runs(suite)
            if r.result.get("status") == "ok"
        )

    def find(self, ident: str) -> list[StoredRun]:
        """Runs whose run id equals ``ident``, else whose experiment id starts with it."""
        runs = list(self.iter_runs())
        exact = [r for r in runs if r.run_id == ident]
        return exact or [r for r in runs if r.experiment_id.startswith(ident)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
