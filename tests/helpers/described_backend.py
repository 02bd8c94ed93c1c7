"""A third-party backend that declares its description (registered through an entry point in
tests): proves that every table reads descriptions, so a plugin needs no edit in lembench."""

from __future__ import annotations

from harness.contract.descriptions import BackendDescription
from tests.helpers.echo_backend import ServingEchoBackend


class DescribedEchoBackend(ServingEchoBackend):
    """The serving echo engine with its own description and options block."""

    description = BackendDescription(
        name="echo-plus",
        summary="the echo engine, described",
        option_block="echo_plus",
        options_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {"step_ms": {"type": "integer", "minimum": 0, "default": 2}},
        },
        aliases=("echoplus",),
        traffic=True,
        streaming=True,
        imports=("json",),
        distributions=("pytest",),
        image="pytorch",
        cpu_image="cpu",
    )
