"""Registries of backends and meters: name -> "module:Class", and each backend's description.

Built-in backends are found, not listed: every module of the package ``harness.backends`` is
imported (they are light: engines are imported inside methods) and each Backend subclass defined
there that carries its own ``description`` is registered under the description's name. Third
parties add backends through the entry-point group ``lembench.backends`` ("module:Class"; a class
without a description gets a minimal one from its name). Meters are found the same way in
``harness.meters`` (a class with a ``MeterDescription``; meter modules import their libraries
lazily), plus the group ``lembench.meters``; the energy methods results may name
(``energy_methods``) come from the meters' descriptions, so a plugin meter's methods validate like
the built-in ones. Listing names never imports an engine, so the controller can check a suite's
``backend:`` without torch, vLLM or TensorRT-LLM installed.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
import pkgutil
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from harness.contract.descriptions import (
    BackendDescription,
    EnergyMethod,
    MeterDescription,
    minimal_description,
)

log = logging.getLogger("harness")

#: The package whose modules hold the built-in backends.
BACKENDS_PACKAGE = "harness.backends"

#: The package whose modules hold the built-in meters.
METER_PACKAGE = "harness.meters"

_GROUPS = {"backend": "lembench.backends", "meter": "lembench.meters"}


class UnknownNameError(LookupError):
    """An unknown backend or meter name; the message lists close matches and what is allowed."""


@cache
def builtin_backends() -> dict[str, tuple[str, BackendDescription]]:
    """Built-in backends found in ``harness.backends``: name -> ("module:Class", description)."""
    from harness.backends.base import Backend

    package = importlib.import_module(BACKENDS_PACKAGE)
    found: dict[str, tuple[str, BackendDescription]] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{BACKENDS_PACKAGE}.{info.name}")
        for attr, obj in sorted(vars(module).items()):
            if not (isinstance(obj, type) and issubclass(obj, Backend)):
                continue
            if obj.__module__ != module.__name__ or "description" not in obj.__dict__:
                continue  # imported from elsewhere, or an abstract helper class
            description: BackendDescription = obj.description
            if description.name in found:
                raise RuntimeError(
                    f"two built-in backends are named {description.name!r}: "
                    f"{found[description.name][0]} and {module.__name__}:{attr}"
                )
            found[description.name] = (f"{module.__name__}:{attr}", description)
    return found


@cache
def builtin_meters() -> dict[str, str]:
    """Meter name -> "module:Class" for every described meter class in ``METER_PACKAGE``."""
    package = importlib.import_module(METER_PACKAGE)
    table: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{METER_PACKAGE}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and obj.__module__ == module.__name__
                and isinstance(obj.__dict__.get("description"), MeterDescription)
            ):
                table[obj.description.name] = f"{module.__name__}:{obj.__name__}"
    return table


@cache
def _table(kind: str) -> dict[str, str]:
    if kind == "backend":
        table = {name: target for name, (target, _) in builtin_backends().items()}
    else:
        table = dict(builtin_meters())
    for ep in entry_points(group=_GROUPS[kind]):
        table.setdefault(ep.name, ep.value)
    return table


def reset() -> None:
    """Forget what was discovered (tests that register entry points call this), and the suite
    schema composed from it."""
    builtin_backends.cache_clear()
    builtin_meters.cache_clear()
    meter_descriptions.cache_clear()
    _table.cache_clear()
    _descriptions.cache_clear()
    from harness.contract import schemas

    schemas.clear_caches()


def names(kind: str = "backend") -> list[str]:
    """Registered names of ``kind`` ("backend" or "meter"), sorted."""
    return sorted(_table(kind))


def suggest(name: str, allowed: list[str]) -> str:
    """'; did you mean 'x'?' for the closest allowed name, or ''."""
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def canonical(name: str) -> str:
    """The registered backend name that ``name`` spells (an alias such as ``llama.cpp`` or
    ``trtllm``), or ``name`` itself when it is no alias."""
    for description in descriptions():
        if name in description.aliases:
            return description.name
    return name


def check_name(name: str, kind: str = "backend") -> None:
    """Raise UnknownNameError with a 'did you mean' hint if ``name`` is not registered."""
    allowed = names(kind)
    if name in allowed:
        return
    hint = suggest(name, allowed)
    if kind == "backend" and canonical(name) != name:
        hint = f"; did you mean {canonical(name)!r}?"
    raise UnknownNameError(f"unknown {kind} {name!r}{hint} (allowed: {', '.join(allowed)})")


@cache
def _descriptions() -> dict[str, BackendDescription]:
    out: dict[str, BackendDescription] = {}
    builtin = builtin_backends()
    for name in names("backend"):
        if name in builtin:
            out[name] = builtin[name][1]
            continue
        try:
            cls = load(name)
        except Exception:  # a plugin that cannot be imported here: the harness says why later
            out[name] = minimal_description(name)
            continue
        own = cls.__dict__.get("description") if isinstance(cls, type) else None
        if isinstance(own, BackendDescription):
            out[name] = own if own.name == name else dataclasses.replace(own, name=name)
        else:
            out[name] = minimal_description(name, bool(getattr(cls, "supports_traffic", False)))
    return out


def descriptions() -> list[BackendDescription]:
    """Every registered backend's description, sorted by name."""
    return list(_descriptions().values())


def describe(name: str) -> BackendDescription:
    """The description of backend ``name`` (or of the backend an alias spells)."""
    name = canonical(name)
    check_name(name)
    return _descriptions()[name]


def with_capability(capability: str) -> list[str]:
    """Backends whose description sets the boolean ``capability`` (traffic, dummy_weights,
    streaming, network, tested_on_hardware), sorted."""
    return [d.name for d in descriptions() if getattr(d, capability)]


def option_block(backend: str) -> str:
    """The experiment key of ``backend``'s engine options (its own name for unknown ones)."""
    try:
        return describe(backend).block
    except UnknownNameError:
        return backend


def option_blocks() -> dict[str, str]:
    """Every backend's option block: backend name -> experiment key."""
    return {d.name: d.block for d in descriptions()}


def load(name: str, kind: str = "backend") -> Any:
    """Import and return the class registered as ``name``. Import errors propagate unchanged so the
    caller can report the missing library (ImportError) as "backend unavailable"."""
    check_name(name, kind)
    module_name, _, attr = _table(kind)[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


@cache
def meter_descriptions() -> dict[str, MeterDescription]:
    """Every registered meter's description (plugins included), by name. A plugin meter that does
    not import is left out (logged): its methods are then unknown here, and said so at
    validation."""
    out: dict[str, MeterDescription] = {}
    for name in names("meter"):
        try:
            cls = load(name, "meter")
        except Exception as exc:  # a broken plugin must not break every run
            log.warning("meter %s does not load: %s", name, exc)
            continue
        description = getattr(cls, "description", None)
        if isinstance(description, MeterDescription):
            out[name] = description
    return out


def energy_methods() -> dict[str, EnergyMethod]:
    """Every energy method a registered meter may report, by name (from the descriptions)."""
    out: dict[str, EnergyMethod] = {}
    for description in meter_descriptions().values():
        for method in description.methods:
            out.setdefault(method.name, method)
    return out
