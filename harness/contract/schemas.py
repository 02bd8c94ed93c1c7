"""Loading the JSON Schemas and validating documents against them.

Schemas reference each other by ``$id`` (``suite.schema.json#/$defs/experiment``), so they are
registered together in one ``referencing`` registry. The suite schema is composed: the file holds
everything but the backends' option blocks, which come from the backends' descriptions (so a
plugin backend gets its block validated too); see :func:`compose_suite`.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMA_NAMES = ("suite", "request", "result")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed schema ``<name>.schema.json`` (suite, request or result)."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    schema = json.loads(schema_path(name).read_text("utf-8"))
    return compose_suite(schema) if name == "suite" else schema


#: The experiment key after which the option blocks are placed: the order of properties decides
#: the order in which defaults are filled in, and so the key order of configs in result files.
_BLOCKS_AFTER = "workload"


def compose_suite(static: dict[str, Any]) -> dict[str, Any]:
    """suite.schema.json as stored plus, for every registered backend, its option block: the
    fragment ``$defs/<block>_options`` (its description's ``options_schema``, marked with
    ``x-backend`` so messages name the engine) and the experiment property ``<block>``."""
    from harness.contract import registry

    schema = copy.deepcopy(static)
    defs = schema["$defs"]
    experiment = defs["experiment"]
    blocks: dict[str, Any] = {}
    for description in registry.descriptions():
        block = description.block
        if block in experiment["properties"] or block in blocks:
            raise ValueError(
                f"backend {description.name!r}: its option block {block!r} is already an "
                "experiment key; give its description another option_block"
            )
        fragment = json.loads(json.dumps(dict(description.options_schema)))
        fragment.setdefault("x-backend", description.name)
        defs[f"{block}_options"] = fragment
        blocks[block] = {"$ref": f"#/$defs/{block}_options"}
    experiment["properties"] = _insert_after(experiment["properties"], blocks)
    # In a suite's `experiment:` / `experiments:` entries (checked whole once expanded).
    partial = defs["experiment_partial"]
    partial["properties"] = _insert_after(
        partial["properties"], {block: {"type": "object"} for block in blocks}
    )
    return schema


def _insert_after(properties: dict[str, Any], blocks: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in properties.items():
        out[key] = value
        if key == _BLOCKS_AFTER:
            out.update(blocks)
    return out


def clear_caches() -> None:
    """Forget loaded schemas and validators (after the backend registry changed)."""
    load_schema.cache_clear()
    _registry.cache_clear()
    validator.cache_clear()


def schema_path(name: str) -> Any:
    """Where ``<name>.schema.json`` is read from: the checkout's ``schemas/`` when the harness runs
    from a source tree (so a checkout always validates against its own schemas, whatever is
    installed), else the copy shipped as the package ``harness.schema_files``."""
    source = Path(__file__).resolve().parents[2] / "schemas" / f"{name}.schema.json"
    if source.is_file():
        return source
    return resources.files("harness.schema_files").joinpath(f"{name}.schema.json")


@cache
def _registry() -> Registry:
    resources_ = []
    for name in SCHEMA_NAMES:
        schema = load_schema(name)
        resources_.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources_)


@cache
def validator(name: str, pointer: str = "") -> jsonschema.Draft202012Validator:
    """A validator for the schema ``name``, or for the sub-schema at JSON pointer ``pointer``
    (e.g. ``/$defs/experiment``)."""
    schema = load_schema(name)
    if pointer:
        schema = {"$ref": f"{schema['$id']}#{pointer}"}
    return jsonschema.Draft202012Validator(
        schema, registry=_registry(), format_checker=jsonschema.FormatChecker()
    )


def schema_version(name: str) -> int:
    """The integer ``schema_version`` this lembench writes for documents of this schema (the
    newest it accepts)."""
    spec = load_schema(name)["properties"]["schema_version"]
    return int(spec["const"]) if "const" in spec else max(spec["enum"])


def iter_errors(name: str, instance: Any, pointer: str = "") -> list[jsonschema.ValidationError]:
    """All validation errors of ``instance``, most specific first."""
    errors = list(validator(name, pointer).iter_errors(instance))
    return sorted(errors, key=jsonschema.exceptions.relevance)


def first_error(name: str, instance: Any, pointer: str = "") -> jsonschema.ValidationError | None:
    """The most relevant validation error, or None when ``instance`` is valid."""
    return jsonschema.exceptions.best_match(validator(name, pointer).iter_errors(instance))


def error_path(error: jsonschema.ValidationError) -> str:
    """Dotted key path of an error (``experiment.workload.input_tokens``; list items as ``[i]``)."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
