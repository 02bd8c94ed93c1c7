"""What lembench knows about one backend, declared once next to its code.

A backend class carries a :class:`BackendDescription` as its class attribute ``description``;
every table that used to list backends reads these instead: the registry (names, aliases), suite
validation (the option block and its JSON Schema), capability checks (traffic, dummy weights),
images and compose, the environment self test, doctor and the environment key. Standard library
only: ``lembench.imagedefs`` reads descriptions under the system python3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
