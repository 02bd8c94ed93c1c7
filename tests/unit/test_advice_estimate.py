"""lembench estimate: the monthly projection (numbers checked by hand), current vs best, measured
and estimated kept apart, and every input error (one line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lembench.advice.data import load
from lembench.advice.estimate import Assumptions, project
from lembench.advice.scenarios import scenario
from lembench.errors import UserError
from tests.helpers.advice_runs import add, config
from tests.unit.test_advice_data import one_line_error, run_cli


def test_projection_math(tmp_path: Path) -> None:
    # 0.5 J/output token x 128 output tokens = 64 J per request
    a = add(tmp_path, config(batch_size=1), j=0.5)
    b = add(tmp_path, config(batch_size=8), j=0.25)  # 32 J per request
    p = project(load(tmp_path), Assumptions(1_000_000, 1.5, 0.2, 400.0))
    rows = {r.experiment.experiment_id: r for r in p.measured}
    assert rows[a].j_per_request == pytest.approx(64.0)
    # 1e6 requests x 64 J x PUE 1.5 / 3.6e6 J/kWh = 26.667 kWh
    assert rows[a].kwh == pytest.approx(26.6667, rel=1e-4)
    assert rows[a].cost == pytest.approx(26.6667 * 0.2, rel=1e-4)  # 5.333
    assert rows[a].co2_kg == pytest.approx(26.6667 * 0.4, rel=1e-4)  # 10.667 kg
    assert rows[a].co2_source == "--grid-g-per-kwh"
    assert rows[b].kwh == pytest.approx(13.3333, rel=1e-4)
    assert [r.experiment.experiment_id for r in p.measured] == [b, a]  # best first
    assert p.estimated == []
    (s,) = p.statements
    assert s.ids == (b, a) and "the costliest, pytorch fp16 batch 1, needs x2" in s.text


def test_current_vs_best(tmp_path: Path) -> None:
    a = add(tmp_path, config(batch_size=1), j=0.5)
    b = add(tmp_path, config(batch_size=8), j=0.25)
    p = project(load(tmp_path), Assumptions(1_000_000, 1.5, 0.2, 400.0), current=a[:6])
    assert p.current is not None and p.current.experiment.experiment_id == a
    assert p.best is not None and p.best.experiment.experiment_id == b
    (s,) = p.statements
    assert s.ids == (a, b)
    # 26.667 - 13.333 kWh; x0.2 per kWh; x0.4 kg/kWh
    assert "saves 13.33 kWh/month (50% less), 2.667 per month, 5.333 kg CO2 per month" in s.text
    p = project(load(tmp_path), Assumptions(1_000_000), current=b)
    assert "already the lowest-energy one" in p.statements[0].text


def test_current_vs_best_under_latency_targets(tmp_path: Path) -> None:
    a = add(tmp_path, config(batch_size=1), j=0.5, ttft=0.5)
    mid = add(tmp_path, config(batch_size=4), j=0.4, ttft=1.0)
    add(tmp_path, config(batch_size=8), j=0.25, ttft=9.0)  # misses chat's TTFT target
    p = project(load(tmp_path), Assumptions(1000), current=a, scn=scenario("chat"))
    assert p.best is not None and p.best.experiment.experiment_id == mid
    assert "that meets the chat targets" in p.statements[0].text


def test_recorded_grid_intensity(tmp_path: Path) -> None:
    add(tmp_path, config(), j=0.5, co2_intensity=350.0)
    p = project(load(tmp_path), Assumptions(3_600_000))  # 3.6e6 x 64 J / 3.6e6 = 64 kWh
    (r,) = p.measured
    assert r.kwh == pytest.approx(64.0) and r.co2_kg == pytest.approx(64 * 0.35)
    assert "DEU" in (r.co2_source or "") and r.cost is None
    assert any("CO2 at the grid intensity the runs recorded" in n for n in p.notes)
    assert any("PUE 1.0" in n for n in p.notes)


def test_no_intensity_no_co2(tmp_path: Path) -> None:
    add(tmp_path, config(), j=0.5)
    (r,) = project(load(tmp_path), Assumptions(1000)).measured
    assert r.co2_kg is None


def test_estimates_projected_apart(tmp_path: Path) -> None:
    measured = add(tmp_path, config(batch_size=1), j=0.5)
    est = add(tmp_path, config(batch_size=8), j=0.1, estimate=True)
    p = project(load(tmp_path), Assumptions(1000), current=measured)
    assert [r.experiment.experiment_id for r in p.measured] == [measured]
    assert [r.experiment.experiment_id for r in p.estimated] == [est]
    assert p.best.experiment.experiment_id == measured  # the cheaper estimate is not "best"
    assert any("estimated energy is modelled" in n for n in p.notes)


def test_cli_table_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    a = add(tmp_path, config(batch_size=1), j=0.5)
    add(tmp_path, config(batch_size=8), j=0.1, estimate=True)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "estimate",
        str(tmp_path),
        "--requests-per-month",
        "1e6",
        "--price-per-kwh",
        "0.3",
        "--current",
        a[:8],
    )
    assert code == 0, err
    assert "measured energy: lowest first" in out and "estimated energy" in out
    assert "(current)" in out and "cost/month" in out
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "estimate",
        str(tmp_path),
        "--requests-per-month",
        "1000000",
        "--json",
    )
    doc = json.loads(out)
    assert doc["command"] == "estimate" and doc["assumptions"]["pue"] == 1.0
    assert [r["id"] for r in doc["measured"]] == [a]
    assert doc["measured"][0]["kwh_per_month"] == pytest.approx(1e6 * 64 / 3.6e6)
    assert doc["estimated"][0]["energy_is_estimate"] is True


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--requests-per-month", "0"], "--requests-per-month: must be > 0, got 0"),
        (["--requests-per-month", "-5"], "--requests-per-month: must be > 0, got -5"),
        (["--requests-per-month", "lots"], "--requests-per-month: expected a number"),
        (["--requests-per-month", "10", "--pue", "0.9"], "--pue: must be >= 1"),
        (["--requests-per-month", "10", "--price-per-kwh", "-1"], "--price-per-kwh: must be >= 0"),
        (
            ["--requests-per-month", "10", "--grid-g-per-kwh", "-3"],
            "--grid-g-per-kwh: must be >= 0",
        ),
        (["--requests-per-month", "10", "--current", "zzzz"], "--current: no experiment"),
        (["--requests-per-month", "10", "--current", ""], "--current: '' matches 2 experiments"),
    ],
)
def test_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, args, fragment) -> None:
    add(tmp_path, config(batch_size=1), j=0.5)
    add(tmp_path, config(batch_size=8), j=0.25)
    code, _, err = run_cli(monkeypatch, capsys, "estimate", str(tmp_path), *args)
    one_line_error(code, err, fragment)


def test_missing_requests_per_month_is_an_error(tmp_path: Path, monkeypatch, capsys) -> None:
    add(tmp_path, config(), j=0.5)
    code, _, err = run_cli(monkeypatch, capsys, "estimate", str(tmp_path))
    assert code == 2 and "--requests-per-month" in err


def test_validation_before_reading(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--pue"):
        Assumptions(10, pue=0.5).validate()


def test_custom_targets_without_scenario(tmp_path: Path, monkeypatch, capsys) -> None:
    a = add(tmp_path, config(batch_size=1), j=0.5, e2e=2.0)
    add(tmp_path, config(batch_size=8), j=0.25, e2e=9.0)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "estimate",
        str(tmp_path),
        "--requests-per-month",
        "1000",
        "--max-e2e-s",
        "5",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["scenario"]["name"] == "custom"
    assert doc["scenario"]["targets"] == [
        {"metric": "e2e_p99_s", "limit_s": 5.0, "source": "--max-e2e-s (given)"}
    ]
    (s,) = doc["statements"]
    assert s["ids"] == [a] and "meeting the custom targets" in s["text"]
