"""Print the requirements of lembench's core and the given extras, one per line, from
pyproject.toml (self-references such as ``lembench[pytorch]`` are expanded).

Images install these first, in a layer that only changes when the dependencies change, and the
harness itself afterwards with ``--no-deps``, so a source change rebuilds in seconds.

    python3 images/requirements.py [--pyproject PATH] [EXTRA ...]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(project: dict, extras: list[str]) -> list[str]:
    name = project["name"]
    optional = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r} (allowed: {', '.join(sorted(optional))})")
        seen.add(extra)
        for req in optional[extra]:
            m = re.match(rf"^{re.escape(name)}\[([^\]]+)\]\s*$", req)
            if m:
                todo.extend(e.strip() for e in m.group(1).split(","))
            else:
                out.append(req)
    return list(dict.fromkeys(out))


def main(argv: list[str]) -> int:
    path = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if argv[:1] == ["--pyproject"]:
        path, argv = Path(argv[1]), argv[2:]
    project = tomllib.loads(path.read_text("utf-8"))["project"]
    print("\n".join(requirements(project, argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
