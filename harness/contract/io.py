"""Files the harness exchanges with the controller through the io folder.

``request.json`` (in), ``results/<experiment_id>.json`` (out, one per experiment),
``timelines/<experiment_id>.jsonl`` (the power/telemetry samples of its window), ``events.jsonl``
(progress, appended as the harness goes), ``fatal.json`` (why the whole process gave up) and
``controller.alive`` (the controller's heartbeat, in).
stdout/stderr are logs only, never data.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.contract.redact import scrub
from harness.contract.schemas import error_path, first_error

RESULTS_DIR = "results"
EVENTS_FILE = "events.jsonl"
FATAL_FILE = "fatal.json"
TIMELINES_DIR = "timelines"
#: Touched by the controller about once a second while it waits for the harness; the harness ends
#: itself when it goes stale (harness.contract.lifeline).
HEARTBEAT_FILE = "controller.alive"


class RequestError(ValueError):
    """The request file is missing, not JSON, or invalid against request.schema.json."""


def now_iso() -> str:
    """Current UTC time, ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temp file in the same folder and a rename, so a reader never
    sees a half-written file."""
    data = scrub(data)  # no secret leaves the harness (harness.contract.redact)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); results are meant to be read by others too.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_request(path: Path) -> tuple[dict[str, Any], str]:
    """Load and validate a request; return it with the sha256 of its bytes."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RequestError(f"{path}: cannot read request: {e.strerror or e}") from None
    try:
        request = json.loads(raw)
    except json.JSONDecodeError as e:
        raise RequestError(f"{path}: not JSON: {e}") from None
    error = first_error("request", request)
    if error is not None:
        raise RequestError(f"{path}: {error_path(error) or '(top level)'}: {error.message}")
    return request, hashlib.sha256(raw).hexdigest()


class EventLog:
    """Append-only progress events (JSON lines) that the controller tails to show progress."""

    def __init__(self, io_dir: Path) -> None:
        self.path = io_dir / EVENTS_FILE

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps(scrub({"t": now_iso(), "event": event, **fields}), ensure_ascii=False)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def write_fatal(io_dir: Path, reason: str, message: str) -> None:
    """Record why the whole harness process gave up (the controller's failure records quote it)."""
    write_json_atomic(io_dir / FATAL_FILE, {"reason": reason, "message": message, "at": now_iso()})
