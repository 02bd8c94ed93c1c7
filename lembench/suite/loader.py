"""``load_suite``: a suite file in, a validated, fully expanded ``Suite`` out.

Order of checks: YAML and ``_extends`` -> plain data -> schema (top level) -> sweep keys -> per grid
point: defaults, schema (expanded experiment), backend, workload file, model -> duplicate ids.
Every failure is a one-line ``UserError``.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from harness.contract import ALIASES, HF_ID, ModelRefError, resolve_ref
from harness.contract.registry import (
    UnknownNameError,
    check_name,
    describe,
    option_blocks,
    suggest,
    with_capability,
)
from harness.contract.schemas import validator
from lembench.errors import UserError
from lembench.suite.defaults import SCHEMA, fill_defaults, version_3_keys, version_4_keys
from lembench.suite.expand import (
    GridPoint,
    canonical_json,
    check_sweep,
    experiment_id,
    grid,
    locate,
    normalise_numbers,
)
from lembench.suite.extends import exists, is_file, load_with_extends, read_file
from lembench.suite.messages import explain, format_path, pick, show, type_word

SETTINGS = (
    "runtime",
    "image",
    "network",
    "gpus",
    "cycles",
    "order",
    "seed",
    "gap_s",
    "timeout_s",
    "measurement",
    "slurm",
)


@dataclass(frozen=True)
class Experiment:
    """One fully expanded experiment."""

    experiment_id: str  # 12 lowercase hex chars, see expand.experiment_id
    config: dict[str, Any]  # defaults filled; valid against suite.schema.json#/$defs/experiment
    sweep_values: dict[str, Any]  # {dotted path: value} of this grid point; {} without a sweep


@dataclass(frozen=True)
class Suite:
    """A loaded suite: settings, expanded experiments and their resolved models."""

    path: Path  # the suite file as given, made absolute
    name: str
    sha256: str  # of the suite file's bytes (not of its _extends parents)
    base_dir: Path  # relative paths in the suite resolve against this folder
    settings: dict[str, Any]  # SETTINGS with defaults filled, plus description ("" when absent)
    experiments: list[Experiment]  # in expansion order
    models: dict[str, dict[str, Any]]  # experiment_id -> harness.models.refs.resolve_ref(...)
    sweep: dict[str, list[Any]]  # dotted path -> values, as written (after _extends)


def load_suite(path: str | Path) -> Suite:
    """Load, validate and expand the suite file at ``path``.

    Raises ``lembench.errors.UserError`` (one line: ``<file>: <key path>: <problem>``) on any bad
    input: unreadable or invalid YAML, a broken ``_extends`` chain, a schema violation, an unknown
    backend, an unresolvable model, a missing workload file, or two grid points that are the same
    experiment.
    """
    display = str(path)
    suite_path = Path(os.path.expanduser(str(path))).absolute()
    raw = read_file(suite_path, display)
    doc = load_with_extends(suite_path, display, raw)
    _check_plain(doc, [], display)
    error = pick(validator(SCHEMA).iter_errors(doc))
    if error is not None:
        parts, message = explain(error)
        raise UserError(message, file=display, key=format_path(parts))

    _version_4_settings(doc, display)
    filled = fill_defaults(doc, "")
    _check_meters(filled["measurement"]["meters"], display)
    settings = {key: filled[key] for key in SETTINGS}
    settings["description"] = filled.get("description", "")
    settings["gap"] = filled.get("gap")
    settings["convergence"] = None
    if isinstance(settings["cycles"], dict):
        # cycles: {min, max, until_ci_pct}: plan up to max cycles; lembench.convergence stops
        # each experiment once its interval is narrow enough.
        conv = fill_defaults(settings["cycles"], "/$defs/convergence")
        if conv["min"] > conv["max"]:
            raise UserError(
                f"min {conv['min']} is above max {conv['max']}; allowed: min <= max",
                file=display,
                key="cycles.min",
            )
        settings["convergence"] = conv
        settings["cycles"] = conv["max"]
    sweep = doc.get("sweep") or {}
    check_sweep(sweep, display)

    base_dir = suite_path.parent
    experiments: list[Experiment] = []
    models: dict[str, dict[str, Any]] = {}
    points: dict[str, GridPoint] = {}
    resolved_refs: dict[str, dict[str, Any]] = {}
    given_blocks: dict[str, GridPoint] = {}  # option block -> first point that wrote it
    used_blocks: set[str] = set()
    blocks = option_blocks()  # backend -> the experiment key of its options
    for point in grid(doc, display):
        config = normalise_numbers(fill_defaults(point.config, "/$defs/experiment"))
        _validate_experiment(config, doc, point, display)
        _check_version(config, doc, point, display)
        own = blocks[config["backend"]]
        used_blocks.add(own)
        for block in blocks.values():
            if block in point.config:
                given_blocks.setdefault(block, point)
            if block != own:
                # Another backend's options (a sweep over backends writes both): not this one's.
                config.pop(block, None)
        _check_capabilities(config, doc, point, display)
        eid = experiment_id(config)
        if eid in points:
            raise UserError(
                f"{points[eid].label()} and {point.label()} expand to the same experiment {eid} "
                "(after defaults are filled in); make them differ or remove one",
                file=display,
            )
        points[eid] = point
        _check_workload_file(config, base_dir, doc, point, display)
        ref_key = canonical_json(config["model"])
        if ref_key not in resolved_refs:
            resolved_refs[ref_key] = _resolve_model(config["model"], base_dir, doc, point, display)
        models[eid] = resolved_refs[ref_key]
        experiments.append(Experiment(eid, config, point.sweep_values))

    for block, point in given_blocks.items():
        if block not in used_blocks:
            backend = next(b for b, k in blocks.items() if k == block)
            _fail(
                f"options for the {backend} backend, but no experiment uses it "
                f"(backends here: {', '.join(sorted({e.config['backend'] for e in experiments}))})",
                doc,
                point,
                [block],
                display,
            )

    return Suite(
        path=suite_path,
        name=doc["name"],
        sha256=hashlib.sha256(raw).hexdigest(),
        base_dir=base_dir,
        settings=settings,
        experiments=experiments,
        models=models,
        sweep=sweep,
    )


def _check_plain(value: Any, parts: list[str | int], display: str) -> None:
    """Only JSON data may go on: string keys, and no YAML dates, sets or binary (they would not
    validate meaningfully nor hash)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UserError(
                    f"key {show(key)} is read as {type_word(key)}, not text; quote it",
                    file=display,
                    key=format_path(parts) or None,
                )
            _check_plain(item, [*parts, key], display)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain(item, [*parts, index], display)
    elif isinstance(value, float) and not math.isfinite(value):
        # YAML's .nan/.inf pass JSON Schema's number checks, then crash (or silently disable a
        # timeout) at run time.
        raise UserError(
            f"{show(value)} is not a usable number; give a finite one",
            file=display,
            key=format_path(parts),
        )
    elif not isinstance(value, str | int | float | bool) and value is not None:
        raise UserError(
            f"YAML reads {show(value)} as a {type_word(value)}; quote it to make it text",
            file=display,
            key=format_path(parts),
        )


def _fail(
    message: str, doc: dict[str, Any], point: GridPoint, parts: list[Any], display: str
) -> NoReturn:
    """Raise a UserError about the value at ``parts`` of the point's expanded experiment."""
    where = locate(doc, point, parts)
    if point.sweep_values and not where.startswith("sweep."):
        # The same line may be fine at other grid points; say which one broke.
        message += f" (at {point.label()})"
    raise UserError(" ".join(message.splitlines()), file=display, key=where)


def _validate_experiment(
    config: dict[str, Any], doc: dict[str, Any], point: GridPoint, display: str
) -> None:
    error = pick(validator(SCHEMA, "/$defs/experiment").iter_errors(config))
    if error is not None:
        parts, message = explain(error)
        _fail(message, doc, point, parts, display)
    try:
        check_name(config["backend"], "backend")
    except UnknownNameError as exc:
        _fail(str(exc), doc, point, ["backend"], display)


#: Suite-level settings that came with suite schema_version 4, and when a suite uses them
#: (experiment keys of version 4: lembench.suite.defaults.version_4_keys).
VERSION_4_SETTINGS: tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...] = (
    ("network", lambda doc: "network" in doc),
    ("cycles", lambda doc: isinstance(doc.get("cycles"), dict)),  # a convergence rule
    ("gap", lambda doc: "gap" in doc),
    ("slurm", lambda doc: "slurm" in doc),
    ("runtime", lambda doc: doc.get("runtime") == "slurm"),
)


def _version_4_settings(doc: dict[str, Any], display: str) -> None:
    """Settings of suite schema_version 4 need a suite that says so (one line, exit 2)."""
    if doc["schema_version"] >= 4:
        return
    for key, used in VERSION_4_SETTINGS:
        if used(doc):
            raise UserError(
                f"needs schema_version: 4 (this suite says {doc['schema_version']}); "
                "set schema_version: 4",
                file=display,
                key=key,
            )


def _check_version(
    config: dict[str, Any], doc: dict[str, Any], point: GridPoint, display: str
) -> None:
    """Keys added by suite schema_version 3 and 4 need a suite that says so."""
    for version, keys in ((3, version_3_keys), (4, version_4_keys)):
        if doc["schema_version"] >= version:
            continue
        for parts in keys(config):
            _fail(
                f"{'.'.join(parts)} needs schema_version: {version} (this suite says "
                f"{doc['schema_version']}); set schema_version: {version}",
                doc,
                point,
                parts,
                display,
            )


def _check_capabilities(
    config: dict[str, Any], doc: dict[str, Any], point: GridPoint, display: str
) -> None:
    """What only some backends can do, as their descriptions say: serve traffic, build dummy
    weights."""
    backend = config["backend"]
    description = describe(backend)
    if config.get("traffic") and not description.traffic:
        _fail(
            f"the {backend} backend does not serve traffic "
            f"(backends that do: {', '.join(with_capability('traffic'))})",
            doc,
            point,
            ["traffic"],
            display,
        )
    if config.get("weights") == "dummy":
        if not description.dummy_weights:
            _fail(
                f"the {backend} backend cannot build dummy weights "
                f"(backends that can: {', '.join(with_capability('dummy_weights'))})",
                doc,
                point,
                ["weights"],
                display,
            )
        _check_dummy_model(config["model"], doc, point, display)


def _check_dummy_model(ref: Any, doc: dict[str, Any], point: GridPoint, display: str) -> None:
    """Dummy weights need an architecture: a bundled config (by Hub id) or a local folder."""
    from harness.contract import bundled_model_ids

    hub_id = ref.get("hf") if isinstance(ref, dict) else ref
    if isinstance(ref, dict) and "hf" not in ref:
        return  # a local folder (its config.json) or an alias: checked when resolved
    if not isinstance(hub_id, str) or not HF_ID.match(hub_id):
        return
    bundled = bundled_model_ids()
    if hub_id.lower() not in {b.lower() for b in bundled}:
        _fail(
            f"no bundled config for {hub_id!r} to build dummy weights from"
            f"{suggest(hub_id, bundled)} (bundled: {', '.join(bundled)}; or give a local folder "
            "with a config.json)",
            doc,
            point,
            ["model"],
            display,
        )


def _check_meters(meters: list[str], display: str) -> None:
    """Meter names are registered ones (built in or from the lembench.meters entry points)."""
    for index, name in enumerate(meters):
        if name == "auto":
            if len(meters) > 1:
                raise UserError(
                    "'auto' cannot be combined with named meters",
                    file=display,
                    key=f"measurement.meters[{index}]",
                )
            continue
        try:
            check_name(name, "meter")
        except UnknownNameError as exc:
            raise UserError(str(exc), file=display, key=f"measurement.meters[{index}]") from None


def _check_workload_file(
    config: dict[str, Any], base_dir: Path, doc: dict[str, Any], point: GridPoint, display: str
) -> None:
    workload = config["workload"]
    if workload["kind"] != "jsonl":
        return
    file = Path(os.path.expanduser(workload["path"]))
    file = file if file.is_absolute() else base_dir / file
    if not is_file(file):
        what = "is not a file" if exists(file) else "not found"
        message = f"file {workload['path']!r} {what} (looked at {file})"
        _fail(message, doc, point, ["workload", "path"], display)
    from harness.contract import WorkloadError, read_jsonl_prompts

    # Read now, as the harness will, so a line without its prompt fails here and not after the
    # model has loaded.
    try:
        read_jsonl_prompts(file, workload.get("field") or "prompt", workload.get("num_prompts"))
    except WorkloadError as exc:
        _fail(str(exc), doc, point, ["workload", "path"], display)


def _resolve_model(
    ref: Any, base_dir: Path, doc: dict[str, Any], point: GridPoint, display: str
) -> dict[str, Any]:
    try:
        return resolve_ref(ref, base_dir)
    except (ModelRefError, OSError) as exc:
        message = str(exc)
        if isinstance(ref, str) and "did you mean" not in message:
            message += suggest(ref, sorted(ALIASES))
        _fail(message, doc, point, ["model"], display)
