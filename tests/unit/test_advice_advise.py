"""lembench advise: the recommendation (targets met or not), estimates never ranked with
measurements, noise, scenarios and overrides, the JSON document and the printed report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lembench.advice.advise import Group, advise
from lembench.advice.data import load
from lembench.advice.scenarios import SOURCES, scenario
from tests.helpers.advice_runs import add, config
from tests.unit.test_advice_data import one_line_error, run_cli


def group(root: Path, scn_name: str = "chat", **limits) -> Group:
    (g,) = advise(load(root), scenario(scn_name, **limits)).groups
    return g


def test_lowest_energy_that_meets_the_targets(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0, ttft=0.3, itl=0.03)
    mid = add(tmp_path, config(batch_size=8), j=0.4, ttft=1.5, itl=0.08)
    add(tmp_path, config(batch_size=32), j=0.2, ttft=4.0, itl=0.15)  # TTFT p99 > 2 s
    g = group(tmp_path)
    assert g.recommended is not None and g.recommended.experiment_id == mid
    assert g.basis == "measured" and g.closest is None
    first = g.statements[0]
    assert first.ids == (mid,)
    assert first.text.startswith(
        "recommended: pytorch fp16 batch 8 on NVIDIA H100 80GB HBM3: 0.4 J"
    )
    assert "TTFT p99 1.5 s <= 2 s; ITL p99 80 ms <= 200 ms" in first.text
    cheaper = [s for s in g.statements if "misses the latency target" in s.text]
    assert len(cheaper) == 1 and "TTFT p99 4 s > 2 s" in cheaper[0].text


def test_batch_scenario_has_no_target(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0)
    big = add(tmp_path, config(batch_size=32), j=0.2, ttft=40.0, itl=3.0, e2e=400.0)
    g = group(tmp_path, "batch")
    assert g.recommended is not None and g.recommended.experiment_id == big
    assert "no latency target" in g.statements[0].text


def test_api_scenario_and_overrides(tmp_path: Path) -> None:
    fast = add(tmp_path, config(batch_size=1), j=1.0, e2e=3.0)
    add(tmp_path, config(batch_size=8), j=0.3, e2e=12.0)
    assert group(tmp_path, "api").recommended.experiment_id != fast  # 12 s <= 20 s default
    g = group(tmp_path, "api", max_e2e_s=5.0)
    assert g.recommended is not None and g.recommended.experiment_id == fast
    s = scenario("api", max_e2e_s=5.0)
    assert [(t.metric, t.limit_s, t.source) for t in s.targets] == [
        ("e2e_p99_s", 5.0, "--max-e2e-s (given)")
    ]
    assert scenario("chat").targets[0].source == SOURCES["ttft_p99_s"]
    assert "ttft_latency = 2000 ms" in SOURCES["ttft_p99_s"]


def test_nothing_meets_the_targets(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=16), j=0.2, ttft=6.0)
    close = add(tmp_path, config(batch_size=32), j=0.1, ttft=2.5)
    g = group(tmp_path)
    assert g.recommended is None and g.closest is not None and g.closest.experiment_id == close
    text = g.statements[0].text
    assert text.startswith("no experiment meets the chat targets")
    assert "TTFT p99 2.5 s vs 2 s (x1.25 the limit)" in text
    assert g.suggestion is not None
    assert g.suggestion.snippet == {"sweep": {"batch_size": [1, 2, 4, 8]}}  # 16 is measured


def test_nothing_meets_even_at_batch_one(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0, itl=0.5)
    g = group(tmp_path)
    assert g.recommended is None
    assert g.suggestion is not None and "even batch 1" in g.suggestion.text
    assert g.suggestion.snippet == {"sweep": {"backend": ["pytorch", "vllm"]}}


def test_estimates_set_aside_when_measured_exist(tmp_path: Path) -> None:
    measured = add(tmp_path, config(batch_size=1), j=1.0)
    est = add(tmp_path, config(batch_size=8), j=0.1, estimate=True)  # cheaper, but an estimate
    g = group(tmp_path)
    assert [e.experiment_id for e in g.ranked] == [measured]
    assert [e.experiment_id for e in g.set_aside] == [est]
    assert g.recommended is not None and g.recommended.experiment_id == measured
    aside = [s for s in g.statements if "set aside" in s.text]
    assert len(aside) == 1 and aside[0].ids == (est,)


def test_only_estimates_say_so(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0, estimate=True)
    best = add(tmp_path, config(batch_size=8), j=0.3, estimate=True)
    g = group(tmp_path)
    assert g.basis == "estimate" and g.recommended.experiment_id == best
    assert "estimated 0.3 J/output token" in g.statements[0].text
    assert any("every figure in this group is an estimate" in s.text for s in g.statements)


def test_runner_up_within_noise(tmp_path: Path) -> None:
    a = add(tmp_path, config(batch_size=8), j=0.50, spread=(0.8, 1.0, 1.2))
    b = add(tmp_path, config(batch_size=16), j=0.52, spread=(0.8, 1.0, 1.2))
    g = group(tmp_path)
    assert g.recommended.experiment_id == a
    s = g.statements[1]
    assert s.ids == (a, b) and "within noise" in s.text


def test_groups_by_model_and_workload(tmp_path: Path) -> None:
    add(tmp_path, config(model="synthetic/A-8B"), j=1.0)
    add(tmp_path, config(model="synthetic/B-8B"), j=0.5)
    add(tmp_path, config(model="synthetic/A-8B", output_tokens=512), j=0.2)
    groups = advise(load(tmp_path), scenario("chat")).groups
    assert [(g.model, g.workload) for g in groups] == [
        ("synthetic/A-8B", "synthetic 256->128"),
        ("synthetic/A-8B", "synthetic 256->512"),
        ("synthetic/B-8B", "synthetic 256->128"),
    ]
    assert all(g.recommended is not None for g in groups)


def test_unknown_latency_is_not_recommended(tmp_path: Path) -> None:
    from lembench.report import synthetic
    from lembench.store import ResultStore

    doc, _ = synthetic.result(config(batch_size=4), suite="synthetic-advice", timeline=False)
    empty = {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "min": None, "max": None}
    doc["metrics"]["ttft_s"] = dict(empty)  # e.g. a backend that streams no token timing
    doc["metrics"]["itl_s"] = dict(empty)
    ResultStore(tmp_path).store(doc)
    g = group(tmp_path)
    assert g.recommended is None
    assert any("cannot be checked" in s.text for s in g.statements)


def test_json_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    one = add(tmp_path, config(batch_size=1), j=1.0)
    eight = add(tmp_path, config(batch_size=8), j=0.25)
    code, out, err = run_cli(monkeypatch, capsys, "advise", str(tmp_path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["command"] == "advise" and doc["scenario"]["name"] == "chat"
    assert [t["limit_s"] for t in doc["scenario"]["targets"]] == [2.0, 0.2]
    (g,) = doc["groups"]
    assert g["recommended"] == eight and g["energy_basis"] == "measured"
    assert [e["id"] for e in g["experiments"]] == [eight, one]
    assert g["experiments"][0]["metrics"]["j_per_output_token"]["n"] == 3
    assert all(s["ids"] for s in g["statements"])
    levers = {lv["lever"]: lv for lv in doc["levers"]}
    assert levers["batch_size"]["steps"][0]["ids"] == [one, eight]
    assert levers["precision"]["steps"] == [] and levers["precision"]["suggestion"]["suite_snippet"]
    codes = {p["code"] for p in doc["pitfalls"]}
    assert "batch_size_one" in codes


def test_printed_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    eight = add(tmp_path, config(batch_size=8), j=0.25)
    add(tmp_path, config(batch_size=1), j=1.0)
    code, out, err = run_cli(monkeypatch, capsys, "advise", str(tmp_path), "--scenario", "api")
    assert code == 0, err
    assert "scenario api" in out and "target E2E p99 <= 20 s" in out
    assert "gptj.Server.target_latency = 20000 ms" in out
    assert "recommended: pytorch fp16 batch 8" in out and f"[id {eight[:8]}]" in out
    assert "what each lever changed" in out and "pitfalls" in out
    assert "run:" in out and "sweep: {precision: [fp16, bf16]}" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--max-ttft-s", "0"], "--max-ttft-s: must be a number of seconds > 0"),
        (["--max-e2e-s", "-1"], "--max-e2e-s: must be a number of seconds > 0"),
        (["--max-itl-s", "fast"], "--max-itl-s: expected a number, got 'fast'"),
    ],
)
def test_bad_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, args, fragment
) -> None:
    add(tmp_path, config(), j=1.0)
    code, _, err = run_cli(monkeypatch, capsys, "advise", str(tmp_path), *args)
    one_line_error(code, err, fragment)


def test_frozen_real_runs(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The real SmolLM2 runs frozen in tests/data (schema v2, upgraded on read; estimated
    energy): batch 4 is recommended, batch 1 -> 4 is a measured step, every figure an estimate."""
    data = Path(__file__).resolve().parents[1] / "data" / "runs" / "quickstart"
    code, out, err = run_cli(
        monkeypatch, capsys, "advise", str(data), "--scenario", "batch", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    (g,) = doc["groups"]
    assert g["energy_basis"] == "estimate" and g["recommended"] == "223aff7a89d3"
    (step,) = next(lv for lv in doc["levers"] if lv["lever"] == "batch_size")["steps"]
    assert step["ids"] == ["824987d94347", "223aff7a89d3"]
    assert step["changes"]["j_per_output_token"]["noise"] == "within"  # 2 noisy runs each
    assert {"estimated_energy", "high_variance", "too_few_cycles"} <= {
        p["code"] for p in doc["pitfalls"]
    }
