"""Pitfalls detected in measurements: present, absent, and 'run this experiment'."""

from __future__ import annotations

from pathlib import Path

import pytest

from lembench.advice.data import load
from lembench.advice.pitfalls import Pitfall, detect
from lembench.advice.scenarios import scenario
from tests.helpers.advice_runs import add, config

SMALL = 360_000_000  # a model under 3B parameters


def found(root: Path, code: str, scn=None) -> list[Pitfall]:
    return [p for p in detect(load(root).experiments, scn) if p.code == code]


# ---------------------------------------------------------------- int8_default_threshold


def test_int8_default_threshold_detected_and_quantified(tmp_path: Path) -> None:
    fp16 = add(tmp_path, config(), j=0.40, tput=200.0)
    int8 = add(tmp_path, config(quantization="bnb_int8"), j=0.62, tput=80.0)
    (p,) = found(tmp_path, "int8_default_threshold")
    assert p.status == "detected" and p.ids == (fp16, int8)
    assert "+55% energy per token against fp16 (0.4 J -> 0.62 J)" in p.text
    assert "throughput x0.4" in p.text
    assert p.suggestion is not None
    assert p.suggestion.snippet == {
        "experiment": {"pytorch": {"quantization": "bnb_int8", "llm_int8_threshold": 0.0}}
    }


def test_int8_absent_when_cheaper_or_within_noise_or_threshold_set(tmp_path: Path) -> None:
    add(tmp_path, config(), j=0.40)
    add(tmp_path, config(quantization="bnb_int8"), j=0.30)  # int8 cheaper here: no pitfall
    assert found(tmp_path, "int8_default_threshold") == []
    noisy = tmp_path / "noisy"
    add(noisy, config(), j=0.40, spread=(0.7, 1.0, 1.3))
    add(noisy, config(quantization="bnb_int8"), j=0.42, spread=(0.7, 1.0, 1.3))
    assert found(noisy, "int8_default_threshold") == []
    explicit = tmp_path / "explicit"
    add(explicit, config(quantization="bnb_int8", threshold=0.0), j=0.9)  # threshold given
    assert found(explicit, "int8_default_threshold") == []


def test_int8_without_counterpart_says_what_to_run(tmp_path: Path) -> None:
    eid = add(tmp_path, config(precision="fp32", quantization="bnb_int8"), j=0.62)
    add(tmp_path, config(precision="fp16", batch_size=8), j=0.1)  # other batch: no counterpart
    (p,) = found(tmp_path, "int8_default_threshold")
    assert p.status == "unverified" and p.ids == (eid,)
    assert "cannot tell" in p.text
    assert p.suggestion is not None
    assert p.suggestion.yaml_lines() == [
        "experiment: {device: cuda, precision: fp16}",
        "sweep: {pytorch.quantization: [null, bnb_int8]}",
    ]


# ---------------------------------------------------------------- four_bit_small_model


def test_four_bit_small_model_detected(tmp_path: Path) -> None:
    ref = add(tmp_path, config(model="synthetic/Tiny-360M"), j=0.05, params=SMALL)
    q = add(
        tmp_path,
        config(model="synthetic/Tiny-360M", quantization="bnb_nf4"),
        j=0.08,
        params=SMALL // 2,
    )
    (p,) = found(tmp_path, "four_bit_small_model")
    assert p.status == "detected" and p.ids == (ref, q)
    assert "360M parameters" in p.text and "+60% energy per token against fp16" in p.text


def test_four_bit_absent_for_big_models_unknown_sizes_and_when_cheaper(tmp_path: Path) -> None:
    add(tmp_path, config(model="synthetic/Big-8B", quantization="bnb_nf4"), j=0.5)  # 8B: fine
    add(tmp_path, config(model="synthetic/mystery", quantization="bnb_fp4"), j=0.5, params=None)
    assert found(tmp_path, "four_bit_small_model") == []
    cheaper = tmp_path / "cheaper"
    add(cheaper, config(model="synthetic/Tiny-360M"), j=0.08, params=SMALL)
    add(cheaper, config(model="synthetic/Tiny-360M", quantization="bnb_nf4"), j=0.05, params=SMALL)
    assert found(cheaper, "four_bit_small_model") == []


def test_four_bit_unverified_without_counterpart(tmp_path: Path) -> None:
    eid = add(
        tmp_path, config(model="synthetic/Tiny-360M", quantization="bnb_nf4"), j=0.08, params=SMALL
    )
    (p,) = found(tmp_path, "four_bit_small_model")
    assert p.status == "unverified" and p.ids == (eid,)
    assert p.suggestion is not None
    assert p.suggestion.snippet["sweep"] == {"pytorch.quantization": [None, "bnb_nf4"]}


# ---------------------------------------------------------------- batch_size_one


def test_batch_one_detected_when_a_larger_batch_is_cheaper(tmp_path: Path) -> None:
    one = add(tmp_path, config(batch_size=1), j=1.0)
    add(tmp_path, config(batch_size=4), j=0.4)
    eight = add(tmp_path, config(batch_size=8), j=0.25)
    (p,) = found(tmp_path, "batch_size_one")
    assert p.status == "detected" and p.ids == (one, eight)
    assert p.text.startswith("batch 1 uses x4 the energy per token of batch 8")


def test_batch_one_respects_latency_targets(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0, ttft=0.5)
    add(tmp_path, config(batch_size=8), j=0.25, ttft=5.0)  # misses chat's TTFT p99 2 s
    assert found(tmp_path, "batch_size_one", scenario("chat")) == []
    (p,) = found(tmp_path, "batch_size_one", scenario("batch"))
    assert p.status == "detected"


def test_only_batch_one_measured(tmp_path: Path) -> None:
    a = add(tmp_path, config(batch_size=1), j=1.0)
    b = add(tmp_path, config(batch_size=1, precision="fp32"), j=2.0)
    (p,) = found(tmp_path, "batch_size_one")
    assert p.status == "unverified" and set(p.ids) == {a, b}
    assert p.suggestion is not None and p.suggestion.yaml_lines() == [
        "sweep: {batch_size: [1, 8, 32]}"
    ]


def test_batch_one_ignores_traffic_experiments(tmp_path: Path) -> None:
    # Under traffic the engine batches what is in flight: batch_size 1 is not a choice made there.
    served = config(batch_size=1)
    served["traffic"] = {"pattern": "concurrency", "concurrency": 8}
    add(tmp_path, served, j=1.0)
    assert found(tmp_path, "batch_size_one") == []


def test_batch_one_absent(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0)
    add(tmp_path, config(batch_size=8), j=1.2)  # batching did not help here
    assert found(tmp_path, "batch_size_one") == []


# ---------------------------------------------------------------- power_not_efficiency


def test_power_not_efficiency(tmp_path: Path) -> None:
    low = add(tmp_path, config(batch_size=1), j=1.0, tput=100.0, power=60.0)
    best = add(tmp_path, config(batch_size=8), j=0.48, tput=600.0, power=100.0)
    (p,) = found(tmp_path, "power_not_efficiency")
    assert p.ids == (low, best)
    assert "draws 40% less power" in p.text and "x2.08 the energy per token" in p.text


def test_power_absent_when_low_power_is_also_cheapest(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=0.5, power=60.0)
    add(tmp_path, config(batch_size=8), j=1.0, power=100.0)
    assert found(tmp_path, "power_not_efficiency") == []
    close = tmp_path / "close"  # 2% less power is not "draws less power"
    add(close, config(batch_size=1), j=1.0, power=98.0)
    add(close, config(batch_size=8), j=0.5, power=100.0)
    assert found(close, "power_not_efficiency") == []


# ---------------------------------------------------------------- data notes


def test_estimated_energy_note(tmp_path: Path) -> None:
    eid = add(tmp_path, config(), j=1.0, estimate=True, hardware=None)
    (p,) = found(tmp_path, "estimated_energy")
    assert p.status == "note" and p.ids == (eid,)
    assert p.text.startswith("every energy figure here is an estimate (estimate_codecarbon)")
    add(tmp_path, config(batch_size=4), j=0.5)
    (p,) = found(tmp_path, "estimated_energy")
    assert p.text.startswith("1 of 2 experiments have estimated energy")


@pytest.mark.parametrize(
    ("spread", "code"),
    [((1.0,), "too_few_cycles"), ((0.7, 1.0, 1.3), "high_variance")],
)
def test_stability_notes(tmp_path: Path, spread, code: str) -> None:
    eid = add(tmp_path, config(), j=1.0, spread=spread)
    (p,) = found(tmp_path, code)
    assert p.ids == (eid,) and p.suggestion is not None
    assert p.suggestion.snippet == {"cycles": 5}


def test_clean_measurements_have_no_pitfalls(tmp_path: Path) -> None:
    add(tmp_path, config(batch_size=1), j=1.0, power=100.0, tput=100.0)
    add(tmp_path, config(batch_size=8), j=1.1, power=110.0, tput=100.0)
    assert detect(load(tmp_path).experiments) == []
