"""Meter descriptions: the registry discovers meters by them, and energy methods (the harness's
check, the methodology page) come from them, so a plugin meter's results validate."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from harness.contract import registry
from harness.contract.descriptions import EnergyMethod, MeterDescription
from harness.contract.results import unknown_energy_method, validation_problem
from harness.contract.schemas import iter_errors
from harness.meters import base
from lembench.report.methodology import method_entries
from lembench.results.migrate import upgrade

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch):
    """The registry as if a package declared ``wallplug = tests.fakes.plugin_meter:WallPlugMeter``
    in the ``lembench.meters`` entry-point group."""

    def fake_entry_points(group: str):
        if group != "lembench.meters":
            return []
        return [EntryPoint("wallplug", "tests.fakes.plugin_meter:WallPlugMeter", group)]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    registry.reset()
    yield
    monkeypatch.undo()
    registry.reset()


def test_builtin_meters_are_discovered_from_their_descriptions() -> None:
    table = registry.builtin_meters()
    assert set(table) >= {"nvml", "amdsmi", "rapl", "codecarbon"}
    for name in table:
        cls = registry.load(name, "meter")
        d = cls.description
        assert isinstance(d, MeterDescription)
        assert d.name == cls.name == name
        assert set(cls.domains) <= set(d.domains)
        assert d.methods and d.enable_hint and d.platforms
        assert set(d.domains) <= set(base.DOMAINS)


def test_methods_come_from_the_descriptions() -> None:
    described = {m.name for d in registry.meter_descriptions().values() for m in d.methods}
    assert set(base.METHODS) == described
    assert {"nvml_counter", "nvml_power_poll", "amdsmi_counter", "rapl"} <= described
    estimates = {n for n, m in registry.energy_methods().items() if m.kind == "estimate"}
    assert estimates == {n for n in described if n.startswith("estimate_")}
    # The methodology page lists each with its kind and how, measured ones first.
    rows = method_entries()
    assert {r["name"] for r in rows} == described
    assert rows[-1]["kind"] == "estimate" and rows[0]["kind"] == "measured"


def test_energy_method_names_and_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="must match"):
        EnergyMethod("Bad-Name", "measured", "x")
    with pytest.raises(ValueError, match="estimate_"):
        EnergyMethod("tdp_model", "estimate", "x")
    with pytest.raises(ValueError, match="kind"):
        EnergyMethod("tdp", "guessed", "x")  # type: ignore[arg-type]


def _component(method: str) -> dict:
    return {
        "meter": "wallplug",
        "method": method,
        "domain": "cpu",
        "is_estimate": False,
        "energy_j": 1.0,
    }


def test_a_plugin_meters_method_validates(plugin) -> None:
    assert "wallplug" in registry.names("meter")
    assert "wallplug_counter" in base.METHODS
    assert "wallplug_counter" in {r["name"] for r in method_entries()}
    # The schema fixes only the shape: the controller accepts the method without the plugin.
    assert not iter_errors("result", _component("wallplug_counter"), "/$defs/energy_component")
    assert iter_errors("result", _component("Wall-Plug"), "/$defs/energy_component")
    # The harness checks the name against the registered meters.
    assert (
        unknown_energy_method({"energy": {"components": [_component("wallplug_counter")]}}) is None
    )


def test_an_undescribed_method_is_refused_by_the_harness() -> None:
    problem = unknown_energy_method({"energy": {"components": [_component("wallplug_counter")]}})
    assert problem is not None
    assert problem.startswith("energy.components[0].method: 'wallplug_counter' is not described")
    assert unknown_energy_method({"status": "failed"}) is None


def test_frozen_v4_result_still_validates_at_v5() -> None:
    raw = json.loads((DATA / "result-v4-ok-synthetic.json").read_text())
    assert raw["schema_version"] == 4
    upgraded = upgrade(raw)
    assert upgraded["schema_version"] == 5
    assert validation_problem(upgraded) is None
    assert unknown_energy_method(upgraded) is None
    assert validation_problem(raw) is not None  # the version bump is what the upgrade adds
