"""Registering test backends the way a third party does: entry points of ``lembench.backends``.

The installed distributions' entry points are the outside world here, so they are what is faked;
the registry's own discovery runs unchanged.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from harness.contract import registry


def register_backends(monkeypatch: pytest.MonkeyPatch, targets: dict[str, str]) -> None:
    """Add ``targets`` (name -> "module:Class") to the ``lembench.backends`` entry points until
    the test ends (its fixture calls ``registry.reset()`` on teardown)."""
    real = getattr(registry.entry_points, "__wrapped__", registry.entry_points)
    extra = {**getattr(registry.entry_points, "extra", {}), **targets}

    def entry_points(*, group: str) -> Any:
        found = list(real(group=group))
        if group == "lembench.backends":
            found += [EntryPoint(name, value, group) for name, value in extra.items()]
        return found

    entry_points.__wrapped__ = real  # type: ignore[attr-defined]
    entry_points.extra = extra  # type: ignore[attr-defined]
    monkeypatch.setattr(registry, "entry_points", entry_points)
    registry.reset()
