"""User-facing errors: one line, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input from the user. ``str(error)`` is the whole one-line message shown to them."""

    exit_code = 2

    def __init__(
        self, message: str, file: str | Path | None = None, key: str | None = None
    ) -> None:
        parts = [str(p) for p in (file, key) if p]
        super().__init__(_one_line(": ".join([*parts, message])))
        self.file = str(file) if file else None
        self.key = key


def _one_line(text: str) -> str:
    """``text`` on one line: line breaks that came in with user values (a YAML key, a file name)
    are shown escaped, as Python would write them."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
