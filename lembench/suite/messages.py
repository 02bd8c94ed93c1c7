"""Turning jsonschema validation errors into one short line a user can act on.

``explain(error)`` returns the key path of the offending value (for an unknown or missing key: the
key itself, which jsonschema reports at its parent) and a message saying what is wrong and what is
allowed. Raw jsonschema messages and Python reprs of large values never get through.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from jsonschema import ValidationError

from harness.contract.registry import suggest
from lembench.suite.defaults import kind_branch, resolve

KeyPath = list[str | int]

_TYPE_WORDS = {"object": "mapping", "array": "list"}

# Regular expressions of suite.schema.json said in words; unknown ones are shown as they are.
PATTERN_WORDS = {
    "^[a-z0-9][a-z0-9._-]{0,63}$": "must start with a lowercase letter or digit and contain only "
    "lowercase letters, digits, '.', '_', '-' (at most 64 characters)",
    "^(auto|cpu|cuda(:[0-9]+)?)$": "must be auto, cpu, cuda or cuda:N (N: a GPU index)",
    "^[A-Z]{3}$": "must be an ISO 3166-1 alpha-3 country code in capitals, e.g. USA, DEU, FRA",
    "^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$": "must be a Hugging Face id "
    "of the form org/name",
    "^[a-z_][a-z0-9_]*(\\.[a-z_][a-z0-9_]*)*$": "must be a dotted path of lowercase keys, "
    "e.g. workload.input_tokens",
}

_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def format_path(parts: Iterable[str | int], prefix: str = "") -> str:
    """Dotted key path, list items as ``[i]``: ``experiments[1].workload.input_tokens``."""
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def show(value: Any, limit: int = 60) -> str:
    """A short, one-line, YAML-flavoured rendering of ``value`` (never a big repr)."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(show(item, limit) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {show(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = " ".join(str(value).split())
    if len(text) <= limit:
        return text
    if isinstance(value, list | dict):
        return f"a {type_word(value)} of {len(value)} items"
    return text[: limit - 3] + "..."


def type_word(value: Any) -> str:
    """The suite-language name of ``value``'s type: string, integer, number, boolean, null,
    mapping, list (or the Python name of anything else YAML produced, e.g. date)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    words = {float: "number", str: "string", dict: "mapping", list: "list"}
    for python_type, word in words.items():
        if isinstance(value, python_type):
            return word
    return "null" if value is None else type(value).__name__


def described(value: Any) -> str:
    """``string 'four'``, ``integer 5``, ``null``, ``mapping {a: 1}``: type and value."""
    word = type_word(value)
    return word if value is None else f"{word} {show(value)}"


def _bare(value: Any) -> str:
    return value if isinstance(value, str) else show(value)


def _accepts(types: Any, value: Any) -> bool | None:
    """Whether a schema ``type`` accepts ``value``; None when the schema names no type."""
    if types is None:
        return None
    names = {types} if isinstance(types, str) else set(types)
    word = type_word(value)
    json_names = {"mapping": "object", "list": "array"}.get(word, word)
    if json_names == "integer" and "number" in names:
        return True
    if isinstance(value, float) and value.is_integer() and "integer" in names:
        return True
    return json_names in names


def _types_words(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPE_WORDS.get(n, n) for n in names)


def pick(errors: Iterable[ValidationError]) -> ValidationError | None:
    """The error to report: the deepest (most specific), and at one depth a concrete keyword over
    a ``oneOf``/``anyOf`` (which ``explain`` descends into anyway); ties keep validation order."""
    ranked = sorted(
        errors, key=lambda e: (-len(e.absolute_path), e.validator in ("oneOf", "anyOf"))
    )
    return ranked[0] if ranked else None


def explain(error: ValidationError) -> tuple[KeyPath, str]:
    """(key path, message) for one validation error; see the module docstring."""
    path: KeyPath = list(error.absolute_path)
    keyword, expected, value = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword in ("oneOf", "anyOf"):
        return _explain_branches(error, path)
    if keyword == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        key = next(k for k in value if k not in schema.get("properties", {}))
        kind = schema.get("properties", {}).get("kind", {}).get("const")
        note = f" for kind {kind!r}" if kind is not None else ""
        if schema.get("x-backend"):  # an engine's option block: name the engine
            note = f" for the {schema['x-backend']} backend"
        hint = suggest(str(key), allowed)
        return [*path, key], f"unknown key{note}{hint} (allowed: {', '.join(allowed)})"
    if keyword == "required":
        key = next(k for k in expected if k not in value)
        sub = resolve(schema.get("properties", {}).get(key, {}))
        options = f"; one of: {', '.join(map(_bare, sub['enum']))}" if "enum" in sub else ""
        return [*path, key], f"required key missing{options}"
    if list(error.absolute_schema_path)[-2:] == ["propertyNames", keyword]:
        words = PATTERN_WORDS.get(expected, f"must match {expected}")
        return [
            *path,
            value,
        ], f"invalid key name; {words if keyword == 'pattern' else 'not allowed'}"
    return path, _explain_value(keyword, expected, value)


def _explain_value(keyword: str, expected: Any, value: Any) -> str:
    if keyword == "type":
        message = f"expected {_types_words(expected)}, got {described(value)}"
        if expected == "array" and not isinstance(value, dict | list):
            message += f"; write [{show(value)}] for a single value"
        elif expected == "object" and value is None:
            message += "; write {} for an empty mapping"
        return message
    if keyword in _BOUNDS:
        return f"must be {_BOUNDS[keyword]} {show(expected)} (got {show(value)})"
    if keyword == "enum":
        allowed = ", ".join(map(_bare, expected))
        hint = (
            suggest(value, [v for v in expected if isinstance(v, str)])
            if isinstance(value, str)
            else ""
        )
        return f"{show(value)} is not allowed{hint}{' ' if hint else '; '}allowed: {allowed}"
    if keyword == "const":
        return f"must be {show(expected)} (got {show(value)})"
    if keyword == "pattern":
        words = PATTERN_WORDS.get(expected, f"must match the regular expression {expected}")
        return f"{words} (got {show(value)})"
    if keyword in ("minLength", "minItems", "minProperties"):
        if expected == 1:
            return "must not be empty"
        unit = {"minLength": "characters", "minItems": "items", "minProperties": "keys"}[keyword]
        return f"must have at least {expected} {unit} (got {show(value)})"
    if keyword in ("maxLength", "maxItems", "maxProperties"):
        unit = {"maxLength": "characters", "maxItems": "items", "maxProperties": "keys"}[keyword]
        return f"must have at most {expected} {unit} (got {len(value)})"
    if keyword == "uniqueItems":
        return f"must not list the same value twice (got {show(value)})"
    return f"{show(value)} is not valid here ({keyword})"


def _explain_branches(error: ValidationError, path: KeyPath) -> tuple[KeyPath, str]:
    """A ``oneOf``: find the branch the user meant, and explain what is wrong inside it."""
    value = error.instance
    branches = [resolve(b) for b in error.validator_value]
    by_branch: dict[int, list[ValidationError]] = defaultdict(list)
    for sub in error.context or []:
        by_branch[sub.relative_schema_path[0]].append(sub)

    index: int | None = None
    selected = kind_branch({"oneOf": error.validator_value}, value)
    kinds = [b.get("properties", {}).get("kind", {}).get("const") for b in branches]
    if selected is not None:  # a workload: its `kind` says which branch applies
        index = selected[0]
    elif isinstance(value, dict) and "kind" in value and None not in kinds:
        names = [_bare(k) for k in kinds]
        hint = suggest(str(value["kind"]), names)
        sep = " " if hint else "; "
        allowed = ", ".join(names)
        return [*path, "kind"], f"{show(value['kind'])} is not allowed{hint}{sep}allowed: {allowed}"
    else:
        accepts = [_accepts(b.get("type"), value) for b in branches]
        if accepts.count(True) == 1:
            index = accepts.index(True)
        elif None not in accepts and True not in accepts:
            types = [b["type"] for b in branches]
            return path, f"expected {' or '.join(map(_types_words, types))}, got {described(value)}"

    if index is None:
        required = [b.get("required") for b in branches]
        if isinstance(value, dict) and all(isinstance(r, list) and len(r) == 1 for r in required):
            keys = [r[0] for r in required]
            present = [k for k in keys if k in value]
            got = ", ".join(present) or "none"
            return path, f"must name exactly one of {', '.join(keys)} (got {got})"
        return (
            path,
            "does not match any allowed form"
            if error.context
            else "matches more than one allowed form",
        )
    chosen = pick(by_branch.get(index, []))
    if chosen is None:  # valid for the intended branch, so it also matched another one
        return path, "matches more than one allowed form"
    return explain(chosen)
