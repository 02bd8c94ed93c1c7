"""The JSON Schemas themselves, and what they accept and refuse."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from harness.contract.results import validation_problem
from harness.contract.schemas import SCHEMA_NAMES, compose_suite, load_schema, schema_version
from tests.unit.conftest import make_result

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_2020_12_with_integer_version(name: str) -> None:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert isinstance(schema_version(name), int)
    # The packaged copy is the repo's file (one copy of each schema); the suite schema adds the
    # backends' option blocks from their descriptions to it.
    stored = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    if name == "suite":
        stored = compose_suite(stored)
    assert schema == stored


def test_ok_and_failed_results_validate() -> None:
    assert validation_problem(make_result()) is None
    assert validation_problem(make_result("failed")) is None


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda r: r.pop("metrics"), "metrics"),
        (lambda r: r["metrics"].update(tokens_out=-1), "metrics.tokens_out"),
        (lambda r: r["energy"]["components"][0].update(method="Bad method"), "method"),
        (lambda r: r.update(schema_version=1), "schema_version"),
        (lambda r: r["config"].update(batch_size=0), "config.batch_size"),
        (lambda r: r.update(unexpected=1), "unexpected"),
    ],
)
def test_invalid_results_are_refused(mutate, where: str) -> None:
    result = make_result()
    mutate(result)
    problem = validation_problem(result)
    assert problem is not None
    assert where.split(".")[-1] in problem


def test_failed_result_needs_an_error() -> None:
    result = make_result("failed")
    del result["error"]
    assert validation_problem(result) is not None
