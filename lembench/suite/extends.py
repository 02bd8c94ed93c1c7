"""Reading suite YAML files and resolving ``_extends`` inheritance.

Every problem becomes a one-line ``UserError`` naming the file that is broken, as the user would
recognise it: the path they gave, or a parent's path written relative to it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from lembench.errors import UserError
from lembench.suite.messages import show, type_word

_MERGE_TAG = "tag:yaml.org,2002:merge"

#: Bounds on one suite file, checked before anything is built from it: a real suite is a few KiB
#: of a few hundred values; a hostile one (3000-deep nesting, a 460-byte alias "billion laughs")
#: would otherwise crash the parser or take minutes to expand.
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000


def is_file(path: Path) -> bool:
    """``path.is_file()``, False for paths the OS refuses to look up (name too long, loops)."""
    try:
        return path.is_file()
    except OSError:
        return False


def exists(path: Path) -> bool:
    """``path.exists()``, False for paths the OS refuses to look up."""
    try:
        return path.exists()
    except OSError:
        return False


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys: PyYAML silently keeps the last one, which
    turns a copy-paste slip into a silently different benchmark."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *anchor` keys may legitimately be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key; the base class reports it properly
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` over ``base``: mappings merge recursively, anything else (lists, scalars)
    is replaced by the override. Returns new objects; neither input is modified."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy.deepcopy(base)
        for key, value in override.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def parse_yaml(data: bytes, display: str) -> dict[str, Any]:
    """Parse one suite file's bytes into a mapping; ``display`` is the name used in errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (bad byte at offset {exc.start})", file=display) from None
    try:
        _check_depth(text, display)
        loader = _StrictLoader(text)  # a SafeLoader subclass: safe
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_size(node, display)
            doc = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"invalid YAML{where}: {problem}", file=display) from None
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML: {' '.join(str(exc).split())}", file=display) from None
    if doc is None:
        raise UserError(
            "file is empty; expected a mapping with schema_version, name and experiment",
            file=display,
        )
    if not isinstance(doc, dict):
        raise UserError(
            f"top level must be a mapping (key: value lines), got {type_word(doc)}", file=display
        )
    return doc


def _check_depth(text: str, display: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, from the parser's events (the composer and the
    constructor recurse, and would raise RecursionError on a few thousand levels)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise UserError(
                    f"nested more than {MAX_DEPTH} levels deep (at line {line}); a suite "
                    "needs a few",
                    file=display,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_size(root: yaml.Node, display: str) -> None:
    """Refuse a document of more than MAX_NODES values once aliases are expanded (what
    everything after parsing works on), counted without expanding them."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # post-order without recursion; aliases are shared nodes, counted once each
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if done:
            sizes[id(node)] = min(1 + sum(sizes.get(id(c), 0) for c in children), MAX_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    if sizes[id(root)] > MAX_NODES:
        raise UserError(
            f"more than {MAX_NODES} values once its aliases (*name) are expanded; a suite needs "
            "a few hundred",
            file=display,
        )


def read_file(path: Path, display: str) -> bytes:
    """The bytes of ``path``; a missing or unreadable file is a UserError about ``display``."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(
                f"{size} bytes is too large for a suite file (at most {MAX_BYTES})", file=display
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError("file not found", file=display) from None
    except IsADirectoryError:
        raise UserError("is a directory, not a suite file", file=display) from None
    except OSError as exc:
        raise UserError(f"cannot read file: {exc.strerror or exc}", file=display) from None


def _parent_refs(doc: dict[str, Any], display: str) -> list[str]:
    refs = doc.get("_extends", [])
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs):
        raise UserError(
            "expected a file name or a list of file names (relative to this file), "
            f"got {show(refs)}",
            file=display,
            key="_extends",
        )
    return refs


def load_with_extends(path: Path, display: str, raw: bytes | None = None) -> dict[str, Any]:
    """Load the suite file ``path`` with its ``_extends`` parents merged under it (recursively,
    in order, later wins) and ``_extends`` removed. ``raw``: the file's bytes when already read."""
    return _load(path, display, raw, chain=())


def _load(
    path: Path, display: str, raw: bytes | None, chain: tuple[tuple[Path, str], ...]
) -> dict[str, Any]:
    doc = parse_yaml(read_file(path, display) if raw is None else raw, display)
    chain = (*chain, (path.resolve(), display))
    merged: dict[str, Any] = {}
    for ref in _parent_refs(doc, display):
        parent = Path(os.path.expanduser(ref))
        parent = parent if parent.is_absolute() else path.parent / parent
        parent_display = os.path.normpath(os.path.join(os.path.dirname(display), ref))
        if not is_file(parent):
            what = "is not a file" if exists(parent) else "not found"
            raise UserError(
                f"file {ref!r} {what} (looked at {parent.absolute()})", file=display, key="_extends"
            )
        resolved = parent.resolve()
        if any(seen == resolved for seen, _ in chain):
            names = " -> ".join([*(name for _, name in chain), parent_display])
            raise UserError(f"inheritance cycle: {names}", file=display, key="_extends")
        merged = deep_merge(merged, _load(parent, parent_display, None, chain))
    doc.pop("_extends", None)
    return deep_merge(merged, doc)
