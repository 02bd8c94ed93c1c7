"""Keeping secrets out of everything lembench writes or prints.

A secret reaches the harness by name only (an environment variable: ``HF_TOKEN``, the one
``openai.api_key_env`` names), but a server may echo it back: in an HTTP error body, in its
``/models`` listing, in a log line. And a ``base_url`` may carry credentials (``user:pw@host``).
So every document, event, log line and console line passes through a ``Redactor`` before it is
written: each configured secret value, and the user-info part of any URL, become ``***``.

The harness installs one for its whole process (``install``): ``write_json_atomic``, the event log
and its stdout/stderr (the log) then scrub on their own. The controller builds one per launch and
scrubs what it stores, shows and publishes (results, logs, pages, exports) the same way, so a
result from an older harness is covered too.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

MASK = "***"
#: Environment variables that are always secrets (passed to the harness by name).
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
#: A value shorter than this is not treated as a secret: masking "ab" everywhere would garble
#: results while protecting nothing (no real key is that short).
MIN_SECRET_LEN = 6
#: scheme://user:password@ or scheme://token@ : the user-info part of a URL.
URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/\s@'\"<>]+)@")


class Redactor:
    """Masks the given secret values and any URL user-info in text and JSON-like documents."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        values = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN}
        self.secrets = sorted(values, key=len, reverse=True)

    @classmethod
    def for_request(cls, request: Mapping[str, Any], environ: Mapping[str, str]) -> Redactor:
        """The secrets of one request: the values of SECRET_ENV and of every variable its
        experiments name in ``openai.api_key_env``, plus the credentials in their base_urls."""
        names = set(SECRET_ENV)
        secrets: list[str] = []
        for exp in request.get("experiments") or []:
            config = exp.get("config") if isinstance(exp, dict) else None
            opts = (config or {}).get("openai") if isinstance(config, dict) else None
            if not isinstance(opts, dict):
                continue
            if isinstance(opts.get("api_key_env"), str):
                names.add(opts["api_key_env"])
            match = URL_USERINFO.search(str(opts.get("base_url") or ""))
            if match:  # the password alone may show up, e.g. in a server's error message
                secrets.extend(p for p in match["info"].split(":", 1)[1:] if p)
        secrets.extend(environ[n] for n in names if environ.get(n))
        return cls(secrets)

    def text(self, value: str) -> str:
        """``value`` with every secret and URL user-info masked."""
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        if "@" in value:
            value = URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", value)
        return value

    def bytes(self, data: bytes) -> bytes:
        """``data`` (UTF-8 text, e.g. a log) with every secret masked."""
        return self.text(data.decode("utf-8", errors="replace")).encode("utf-8")

    def document(self, value: Any) -> Any:
        """A copy of a JSON-like ``value`` with every string (keys too) masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                self.text(k) if isinstance(k, str) else k: self.document(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.document(v) for v in value]
        return value


#: The harness process's redactor (``install``); None in the controller and in tests.
_active: Redactor | None = None


def active() -> Redactor | None:
    """The redactor installed for this process, if any."""
    return _active


def scrub(value: Any) -> Any:
    """``value`` masked by the installed redactor (unchanged when none is installed)."""
    return value if _active is None else _active.document(value)


class _RedactingStream(io.TextIOBase):
    """A text stream that masks what is written to it before passing it on."""

    def __init__(self, inner: TextIO, redactor: Redactor) -> None:
        self.inner, self.redactor = inner, redactor

    def write(self, text: str) -> int:
        self.inner.write(self.redactor.text(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def fileno(self) -> int:
        return self.inner.fileno()

    def isatty(self) -> bool:
        return self.inner.isatty()


def install(redactor: Redactor) -> None:
    """Make ``redactor`` this process's: JSON written through harness.contract.io, and everything
    written to stdout/stderr from Python (logging included), are masked from now on."""
    global _active
    _active = redactor
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout = _RedactingStream(old_out, redactor)  # type: ignore[assignment]
    sys.stderr = _RedactingStream(old_err, redactor)  # type: ignore[assignment]
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (old_out, old_err):
            handler.setStream(sys.stdout if handler.stream is old_out else sys.stderr)


def for_environment(request: Mapping[str, Any]) -> Redactor:
    """``Redactor.for_request`` with this process's environment."""
    return Redactor.for_request(request, os.environ)
