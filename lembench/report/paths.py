"""No absolute local path on a published page.

Results record where things were on the measuring machine: the suite file, model files, caches,
scratch folders (``/home/alice/...``, ``/tmp/...``). A page published from them would show the
author's folder layout (user names, project names). Every absolute path in a string is rewritten
before rendering: relative to the git repository that holds it (a suite in a project's
checkout becomes ``suites/x.yaml``), else its file name alone.
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from pathlib import PurePosixPath
from typing import Any

#: An absolute POSIX path inside a string: starts with "/" not preceded by a word, ":", "/" or
#: "." (so URLs such as http://host/v1 and relative paths stay as they are).
ABSOLUTE = re.compile(r"(?<![\w:/.~-])/(?:[\w.@+~-]+/)*[\w.@+~-]+")


@cache
def _repository(folder: str) -> str | None:
    """The innermost git repository holding ``folder`` on this machine, or None."""
    from pathlib import Path

    path = Path(folder)
    for candidate in (path, *path.parents):
        try:
            if (candidate / ".git").exists():
                return str(candidate)
        except OSError:
            return None
    return None


def public_path(path: str) -> str:
    """``path`` relative to its git repository, else its file name alone."""
    pure = PurePosixPath(path)
    repo = _repository(str(pure.parent))
    if repo is not None and repo != "/":
        return str(pure.relative_to(repo))
    return pure.name or path


def publishable(value: Any) -> Any:
    """A copy of a JSON-like ``value`` with every absolute path in its strings made public."""
    if isinstance(value, str):
        return ABSOLUTE.sub(lambda m: public_path(m.group(0)), value) if "/" in value else value
    if isinstance(value, dict):
        return {k: publishable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [publishable(v) for v in value]
    return value


def publish_experiments(experiments: dict[Any, Any]) -> None:
    """Make the experiments' config, provenance, environment and run errors publishable, in
    place (the collected data of one site build)."""
    for exp in experiments.values():
        exp.config = publishable(exp.config)
        exp.provenance = publishable(exp.provenance)
        exp.environment = publishable(exp.environment)
        exp.runs[:] = [
            dataclasses.replace(
                run,
                error=publishable(run.error),
                error_message=publishable(run.error_message),
            )
            for run in exp.runs
        ]
