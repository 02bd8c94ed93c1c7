"""The two JSON Schemas of ``lembench reproduce``: ``reference.schema.json`` (a study's published
data, written by people) and ``reproduction.schema.json`` (the record of one comparison, written by
lembench). Both live in ``schemas/`` beside the suite and result schemas and ship the same way
(``harness.schema_files``; a source checkout reads its own ``schemas/``, see
``harness.contract.schemas.schema_path``); they are loaded here rather than in
``harness.contract.schemas`` because the harness never reads them.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
from jsonschema import ValidationError

from harness.contract.schemas import schema_path
from lembench.suite.messages import explain, format_path, pick, show

REFERENCE = "reference"
RECORD = "reproduction"


@cache
def load(name: str) -> dict[str, Any]:
    """The parsed schema ``<name>.schema.json`` (reference or reproduction)."""
    return json.loads(schema_path(name).read_text("utf-8"))


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load(name), format_checker=jsonschema.FormatChecker())


def version(name: str) -> int:
    """The schema_version this lembench writes and reads for ``name``."""
    return int(load(name)["properties"]["schema_version"]["const"])


def problem(name: str, document: Any) -> tuple[str, str] | None:
    """(dotted key path, one-line message) of the most relevant error, or None when valid."""
    error = pick(validator(name).iter_errors(document))
    if error is None:
        return None
    parts, message = _explain(error)
    return format_path(parts), message


def _explain(error: ValidationError) -> tuple[list[str | int], str]:
    """``lembench.suite.messages.explain`` for these schemas. Its 'required' branch looks the
    missing key's options up in the suite schema, so that one is answered here."""
    path: list[str | int] = list(error.absolute_path)
    if error.validator == "required":
        key = next(k for k in error.validator_value if k not in error.instance)
        return [*path, key], "required key missing"
    try:
        return explain(error)
    except (KeyError, ValueError, StopIteration):  # a $ref the suite-schema helpers cannot follow
        return path, f"{show(error.instance)} is not valid here ({error.validator})"
