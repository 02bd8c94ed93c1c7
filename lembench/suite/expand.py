"""Grid expansion: starting points (``experiment`` merged with each of ``experiments``) times the
cartesian product of ``sweep``; stable experiment ids; and mapping a key path in an expanded
experiment back to where the user wrote it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.contract.registry import suggest
from lembench.errors import UserError
from lembench.suite.defaults import properties, resolve, schema_at
from lembench.suite.extends import deep_merge
from lembench.suite.messages import KeyPath, described, format_path, show


def canonical_json(obj: Any) -> str:
    """The one JSON text of ``obj`` that ids are computed from: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def experiment_id(config: dict[str, Any]) -> str:
    """12 lowercase hex characters: the start of the sha256 of ``canonical_json(config)``."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:12]


def normalise_numbers(value: Any) -> Any:
    """Integral floats become ints (YAML ``4.0`` is a valid integer for the schema, but must not
    hash differently from ``4``); everything else is returned as is."""
    if isinstance(value, dict):
        return {k: normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class GridPoint:
    """One point of the grid, before defaults: which starting point and which sweep values."""

    index: int | None  # position in `experiments`, None when the suite has no `experiments`
    config: dict[str, Any]
    sweep_values: dict[str, Any] = field(default_factory=dict)
    sweep_indices: dict[str, int] = field(default_factory=dict)

    def label(self) -> str:
        """How messages name this point: ``experiments[2] with batch_size=4``, ``sweep point
        batch_size=4``, ``experiments[2]`` or ``experiment``."""
        values = ", ".join(f"{k}={show(v)}" for k, v in self.sweep_values.items())
        if self.index is None:
            return f"sweep point {values}" if values else "experiment"
        return (
            f"experiments[{self.index}] with {values}" if values else f"experiments[{self.index}]"
        )


def check_sweep(sweep: dict[str, list[Any]], display: str) -> None:
    """Reject sweep keys that cannot name a path in an experiment, keys that overlap, and values
    listed twice, before anything is expanded."""
    keys = list(sweep)
    for key in keys:
        _check_sweep_key(key, display)
        for other in keys:
            if key.startswith(f"{other}."):
                raise UserError(
                    f"overlaps sweep.{other}; sweep one or the other",
                    file=display,
                    key=f"sweep.{key}",
                )
        seen: set[str] = set()
        for value in sweep[key]:
            text = canonical_json(normalise_numbers(value))
            if text in seen:
                raise UserError(
                    f"value {show(value)} is listed twice; list each value once",
                    file=display,
                    key=f"sweep.{key}",
                )
            seen.add(text)


def _check_sweep_key(key: str, display: str) -> None:
    schema: Any = schema_at("/$defs/experiment")
    parts = key.split(".")
    for depth, part in enumerate(parts):
        props = properties(schema)
        if part in props:
            schema = props[part]
            continue
        where = ".".join(parts[:depth])
        if not props:
            message = f"{where} has no keys inside it; sweep {where} itself"
        else:
            allowed = sorted(props)
            hint = suggest(part, allowed)
            if hint and where:  # suggest the whole dotted key, which is what the user types
                hint = hint.replace("'", f"'{where}.", 1)
            name = "" if depth == len(parts) - 1 else f" {part!r}"
            scope = f" in {where}" if where else ""
            message = f"unknown key{name}{hint} (allowed{scope}: {', '.join(allowed)})"
        raise UserError(message, file=display, key=f"sweep.{key}")


def grid(doc: dict[str, Any], display: str) -> Iterator[GridPoint]:
    """All grid points in expansion order: starting points in order, and for each the cartesian
    product of the sweep in key order (the last key varies fastest)."""
    base = doc.get("experiment") or {}
    if "experiments" in doc:
        starts = [(i, deep_merge(base, e)) for i, e in enumerate(doc["experiments"])]
    else:
        starts = [(None, base)]
    sweep: dict[str, list[Any]] = doc.get("sweep") or {}
    keys = list(sweep)
    for index, start in starts:
        for combo in itertools.product(*(range(len(sweep[k])) for k in keys)):
            point = GridPoint(index=index, config=copy.deepcopy(start))
            for key, position in zip(keys, combo, strict=True):
                value = copy.deepcopy(sweep[key][position])
                point.sweep_values[key] = value
                point.sweep_indices[key] = position
                _set_path(point, key, value, doc, display)
            yield point


def _set_path(point: GridPoint, key: str, value: Any, doc: dict[str, Any], display: str) -> None:
    """Set dotted ``key`` in the point's config, creating missing intermediate mappings from the
    schema's default for them: sweeping ``workload.input_tokens`` without writing a workload varies
    the default workload (``{kind: synthetic}``), as if it had been written out."""
    parts = key.split(".")
    node = point.config
    schema: Any = schema_at("/$defs/experiment")
    for depth, part in enumerate(parts[:-1]):
        schema = resolve(properties(schema).get(part, {}))
        if part not in node:
            default = schema.get("default") if isinstance(schema, dict) else None
            node[part] = copy.deepcopy(default) if isinstance(default, dict) else {}
        child = node[part]
        if not isinstance(child, dict):
            where = locate(doc, point, parts[: depth + 1])
            raise UserError(
                f"cannot set it: {where} is {described(child)}, not a mapping",
                file=display,
                key=f"sweep.{key}",
            )
        node = child
    node[parts[-1]] = value


def _existing_depth(tree: Any, parts: KeyPath) -> int:
    depth = 0
    for part in parts:
        if isinstance(tree, dict) and part in tree:
            tree, depth = tree[part], depth + 1
        else:
            break
    return depth


def locate(doc: dict[str, Any], point: GridPoint, parts: KeyPath) -> str:
    """Where the user wrote the value at ``parts`` of an expanded experiment.

    ``sweep.<key>`` when a sweep set it (``sweep.<key>[i].<rest>`` inside a swept mapping), else
    ``experiments[i].<path>`` or ``experiment.<path>``, whichever holds more of the path (the
    explicit experiment on a tie)."""
    for key in point.sweep_values:
        key_parts = key.split(".")
        if parts[: len(key_parts)] == key_parts:
            rest = parts[len(key_parts) :]
            if not rest:
                return f"sweep.{key}"
            return format_path(rest, f"sweep.{key}[{point.sweep_indices[key]}]")
    if point.index is None:
        return format_path(parts, "experiment")
    own = doc["experiments"][point.index]
    if _existing_depth(doc.get("experiment"), parts) > _existing_depth(own, parts):
        return format_path(parts, "experiment")
    return format_path(parts, f"experiments[{point.index}]")
