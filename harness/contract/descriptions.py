"""What lembench knows about one backend or meter, declared once next to its code.

A backend class carries a :class:`BackendDescription` as its class attribute ``description``;
every table that used to list backends reads these instead: the registry (names, aliases), suite
validation (the option block and its JSON Schema), capability checks (traffic, dummy weights),
images and compose, the environment self test, doctor and the environment key. A meter class
carries a :class:`MeterDescription` likewise: the registry discovers meters by it, and the energy
methods results may name (schema check, methodology page) come from it. Standard library only:
``lembench.imagedefs`` reads descriptions under the system python3.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


def _no_options() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": {}}


#: The options schema of a plugin backend that declares none: any mapping, passed on unchecked.
FREE_FORM_OPTIONS: Mapping[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class BackendDescription:
    """One backend's declaration (see the module doc for who reads which field)."""

    name: str  # the suite's `backend:` value
    summary: str  # one line for doctor/docs
    option_block: str | None = None  # experiment key of its options; None -> name
    options_schema: Mapping[str, Any] = field(default_factory=_no_options)  # JSON Schema of it
    aliases: tuple[str, ...] = ()  # other spellings users write (llama.cpp, trtllm)
    traffic: bool = False  # serves requests as they arrive (traffic: block)
    streaming: bool = False
    dummy_weights: bool = False  # can build random weights from a config
    quantisations: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()  # modules the self test imports to check the engine
    distributions: tuple[str, ...] = ()  # PyPI distributions whose versions are recorded
    image: str | None = None  # images/<image>/ on a host with NVIDIA GPUs
    cpu_image: str | None = None  # image on a host without (None: none)
    network: bool = False  # needs the network inside its container
    tested_on_hardware: bool = False  # any lembench run on real hardware yet
    # How to make the engine importable without an image (doctor's fix); "" when nothing to say.
    install: str = ""
    # The distribution that is the engine itself, when its version is recorded (a key of
    # LoadInfo.versions): it joins the environment key, so runs of two engine versions are not
    # averaged. None: the engine is torch/transformers (own environment fields) or remote.
    engine_distribution: str | None = None

    @property
    def block(self) -> str:
        """The experiment key that holds this backend's options."""
        return self.option_block or self.name

    def spellings(self) -> tuple[str, ...]:
        """The name and its aliases."""
        return (self.name, *self.aliases)


def minimal_description(name: str, traffic: bool = False) -> BackendDescription:
    """The description of a plugin backend that declares none: its name, a free-form options
    block under its name, and what the class itself says (``supports_traffic``)."""
    return BackendDescription(
        name=name,
        summary=f"third-party backend {name} (it declares no description)",
        options_schema=FREE_FORM_OPTIONS,
        traffic=traffic,
    )


# -- meters -------------------------------------------------------------------------------------
#: Shape of an energy method name (result.schema.json's ``energy_component.method`` pattern).
METHOD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class EnergyMethod:
    """One way a meter obtains a figure: ``kind`` says whether it is a measurement or a model."""

    name: str
    kind: Literal["measured", "estimate"]
    #: One sentence: what is read or modelled, and how it becomes joules over the window.
    how: str

    def __post_init__(self) -> None:
        if not METHOD_NAME.match(self.name):
            raise ValueError(f"energy method name {self.name!r} must match {METHOD_NAME.pattern}")
        if self.kind not in ("measured", "estimate"):
            raise ValueError(f"energy method {self.name}: kind must be measured or estimate")
        if self.kind == "estimate" and not self.name.startswith("estimate_"):
            # Readers tell estimates apart by name too (report marks, filters): keep it visible.
            raise ValueError(f"estimate method {self.name!r} must be named estimate_*")


@dataclass(frozen=True)
class MeterDescription:
    """What a meter is, as data (``Meter.description``)."""

    name: str
    summary: str
    methods: tuple[EnergyMethod, ...]
    #: Energy domains it reports ("gpu", "cpu", "dram", "ane", ...).
    domains: tuple[str, ...]
    #: Where it can run ("linux", "darwin", "win32"; sys.platform prefixes).
    platforms: tuple[str, ...]
    #: One line: how to make it usable where it is not (install, permission, group...).
    enable_hint: str
    #: Paths whose presence means its hardware is here even when the meter cannot run (doctor
    #: then shows ``enable_hint``); empty: hint wherever the platform matches.
    present_if: tuple[str, ...] = ()
