"""Schema walking for suite.schema.json: local ``$ref`` resolution and default filling.

Defaults live only in the schema's ``default`` keywords, so the documentation, the validator and the
expanded experiments (and therefore their ids) cannot drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from harness.contract.schemas import load_schema

SCHEMA = "suite"


def schema_at(pointer: str) -> dict[str, Any]:
    """The sub-schema of suite.schema.json at JSON pointer ``pointer`` ("" for the whole schema)."""
    node: Any = load_schema(SCHEMA)
    for token in [t for t in pointer.split("/") if t]:
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def resolve(schema: Any) -> Any:
    """Follow local ``$ref`` chains (``#/...``); keywords next to a ``$ref`` win over the target's
    (the experiment's ``workload`` carries its own ``default`` beside its ``$ref``)."""
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if not ref.startswith("#"):
            raise ValueError(f"only local $refs are supported in {SCHEMA}.schema.json, got {ref!r}")
        target = schema_at(ref[1:])
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def kind_branch(schema: dict[str, Any], instance: Any) -> tuple[int, dict[str, Any]] | None:
    """For a ``oneOf`` whose branches are told apart by ``properties.kind.const`` (the workload),
    the (index, resolved branch) selected by ``instance["kind"]``, or None."""
    if not isinstance(instance, dict) or "kind" not in instance:
        return None
    for index, branch in enumerate(schema.get("oneOf", [])):
        branch = resolve(branch)
        kind = branch.get("properties", {}).get("kind", {})
        if "const" in kind and kind["const"] == instance["kind"]:
            return index, branch
    return None


def properties(schema: Any) -> dict[str, Any]:
    """The ``properties`` of a resolved object schema, plus those of every object-typed branch of
    its ``oneOf``: all keys that may appear in an instance of it."""
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return {}
    props = dict(schema.get("properties", {}))
    for branch in schema.get("oneOf", []):
        for name, sub in resolve(branch).get("properties", {}).items():
            props.setdefault(name, sub)
    return props


def _fill(instance: Any, schema: Any) -> Any:
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return instance
    if isinstance(instance, dict):
        selected = kind_branch(schema, instance)
        if selected is not None:
            instance = _fill(instance, selected[1])
        for name, sub in schema.get("properties", {}).items():
            sub = resolve(sub)
            if name not in instance and isinstance(sub, dict) and "default" in sub:
                instance[name] = copy.deepcopy(sub["default"])
            if name in instance:
                # Recurse also into a freshly filled default: `warmup: {}` becomes {"runs": 1}.
                instance[name] = _fill(instance[name], sub)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        instance = [_fill(item, schema["items"]) for item in instance]
    return instance


def fill_defaults(instance: Any, schema_pointer: str = "") -> Any:
    """Return a deep copy of ``instance`` with every missing property that has a ``default`` in
    suite.schema.json (at JSON pointer ``schema_pointer``, e.g. ``/$defs/experiment``) filled in,
    recursively. A workload gets the defaults of the ``oneOf`` branch its ``kind`` selects; other
    ``oneOf``s (the model reference) get nothing. Values of the wrong type are left untouched for
    the validator to report."""
    return _fill(copy.deepcopy(instance), schema_at(schema_pointer))


#: What suite schema_version 3 added: experiment keys, and keys of the pytorch block. A suite of an
#: older version that uses them is told to say schema_version: 3.
V3_KEYS = ("weights", "decoding", "batching", "traffic", "llamacpp", "openai", "vllm", "tensorrt")
V3_PYTORCH_KEYS = (
    "quantization",
    "llm_int8_threshold",
    "double_quant",
    "compute_dtype",
    "compile",
    "compile_mode",
    "cache_implementation",
    "device_map",
)


#: What suite schema_version 4 added to an experiment: its CPU thread count (and traffic.slo,
#: version_4_keys). Suite-level settings of version 4 are checked by the loader.
V4_KEYS = ("threads",)


def version_3_keys(config: dict[str, Any]) -> list[list[str]]:
    """Key paths of ``config`` (an expanded experiment) that need suite schema_version 3."""
    paths = [[k] for k in V3_KEYS if k in config]
    pytorch = config.get("pytorch")
    if isinstance(pytorch, dict):
        paths += [["pytorch", k] for k in V3_PYTORCH_KEYS if k in pytorch]
    return paths


def version_4_keys(config: dict[str, Any]) -> list[list[str]]:
    """Key paths of ``config`` (an expanded experiment) that need suite schema_version 4: the
    experiment's threads and goodput's latency limits."""
    paths = [[k] for k in V4_KEYS if k in config]
    traffic = config.get("traffic")
    if isinstance(traffic, dict) and "slo" in traffic:
        paths.append(["traffic", "slo"])
    return paths


def required_version(config: dict[str, Any]) -> int:
    """The lowest suite schema_version that has every key of ``config`` (at least 1)."""
    if version_4_keys(config):
        return 4
    return 3 if version_3_keys(config) else 1
