"""The timeline file format: JSON Lines of samples, one writer and one reader.

The harness writes a window's samples (``harness.window.timeline`` takes them); the controller reads
them back (the report's power charts) as untrusted input.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

#: Lines read from one timeline file at most (about 5.5 hours at 10 Hz).
TIMELINE_MAX_LINES = 200_000


def write_timeline(path: Path, samples: list[dict[str, Any]]) -> None:
    """Write samples as JSON Lines through a temp file and a rename (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A plain open (not mkstemp) so the file gets the umask's permissions, like the results.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for sample in samples:
                f.write(json.dumps(sample, ensure_ascii=False, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_timeline(path: Path) -> list[dict[str, Any]]:
    """Samples of a timeline file (JSON Lines). Read back on the host, so untrusted: bad lines are
    skipped, at most ``TIMELINE_MAX_LINES`` are read, and an unreadable file is no timeline."""
    try:
        with path.open(encoding="utf-8") as f:
            lines = [line for _, line in zip(range(TIMELINE_MAX_LINES), f, strict=False)]
    except (OSError, UnicodeDecodeError):
        return []
    lines = [line for line in lines if line.strip()]
    try:  # one C-speed parse of the whole file; line by line only when some line is bad
        samples = json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        samples = []
        for line in lines:
            try:
                samples.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return [s for s in samples if isinstance(s, dict)]
