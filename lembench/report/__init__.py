"""The static HTML leaderboard and data exports (``lembench report``, ``lembench results export``).

``build_site(results_dir, out)`` writes a self-contained site (no request to any other host);
``lembench.report.export.export(frame, fmt, out)`` writes a table as CSV, Parquet or JSON.
``build_site`` is imported lazily so that importing the CLI commands
(``lembench.report.commands``) stays cheap: no jinja2 or polars.
"""

from __future__ import annotations

from typing import Any

#: Formats of ``export`` and ``lembench results export --format``.
EXPORT_FORMATS = ("csv", "parquet", "json")

__all__ = ["EXPORT_FORMATS", "SiteSummary", "build_site"]


def __getattr__(name: str) -> Any:
    if name in ("SiteSummary", "build_site"):
        from lembench.report import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
