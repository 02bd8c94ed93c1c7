"""Apple Silicon meter: the zeus-apple-silicon reader against a fake of its interface, and the
powermetrics fallback parsing sample plists (tests/data/powermetrics/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.contract.schemas import iter_errors
from harness.meters import apple
from harness.meters.apple import (
    AppleSiliconMeter,
    PowermetricsSample,
    parse_powermetrics,
    sample_energy,
    window_energy,
)
from harness.meters.base import MeterUnavailable
from harness.meters.chain import combine
from tests.fakes import fake_zeus_apple_silicon
from tests.fakes.fake_zeus_apple_silicon import FakeSoc

DATA = Path(__file__).resolve().parents[1] / "data" / "powermetrics"
PLAYER = Path(__file__).resolve().parents[1] / "fakes" / "powermetrics_player.py"


def test_parses_the_nul_separated_plist_documents() -> None:
    docs = parse_powermetrics((DATA / "m2-cpu-gpu-ane.plist").read_bytes())
    assert len(docs) == 3
    elapsed, energy = sample_energy(docs[0])
    assert elapsed == pytest.approx(0.104871)
    assert energy == {"cpu": 0.421, "gpu": 1.013, "ane": 0.0}
    # A document still being written (cut short) is left out, not an error.
    data = (DATA / "m2-cpu-gpu-ane.plist").read_bytes()
    assert len(parse_powermetrics(data[: len(data) - 200])) == 2


def test_older_layout_without_energy_keys_uses_power_times_interval() -> None:
    (doc,) = parse_powermetrics((DATA / "m1pro-power-only.plist").read_bytes())
    elapsed, energy = sample_energy(doc)
    assert elapsed == 0.2
    assert energy == pytest.approx({"cpu": 1.024, "gpu": 0.408, "ane": 0.062})


def test_window_energy_prorates_the_edge_intervals() -> None:
    samples = [
        PowermetricsSample(end_s=10.1, elapsed_s=0.1, energy_j={"gpu": 1.0}),
        PowermetricsSample(end_s=10.2, elapsed_s=0.1, energy_j={"gpu": 1.0}),
        PowermetricsSample(end_s=10.3, elapsed_s=0.1, energy_j={"gpu": 1.0}),
    ]
    energy, used = window_energy(samples, 10.05, 10.25)
    assert used == 3
    assert energy["gpu"] == pytest.approx(0.5 + 1.0 + 0.5)
    assert window_energy(samples, 11.0, 12.0) == ({}, 0)


def test_powermetrics_reader_end_to_end_with_a_recorded_output_player() -> None:
    meter = AppleSiliconMeter(
        {}, powermetrics=[sys.executable, str(PLAYER), str(DATA / "m2-cpu-gpu-ane.plist")]
    )
    try:
        import time

        time.sleep(0.25)  # powermetrics is running before the window, as in a harness
        with meter:
            time.sleep(0.45)
            mid = meter.read_cumulative()
        components = meter.components
    finally:
        meter.close()
    assert mid is not None and mid["gpu"] > 0
    assert {c.domain for c in components} == {"cpu", "gpu", "ane"}
    for c in components:
        assert c.method == "apple_powermetrics" and c.is_estimate is False
        assert not iter_errors("result", c.to_dict(), "/$defs/energy_component")
    gpu = next(c for c in components if c.domain == "gpu")
    # ~10 W for ~0.45 s (the player replays 100 ms intervals of ~1 J GPU energy).
    assert 2.5 < gpu.energy_j < 7.0
    assert gpu.details["reader"] == "powermetrics" and gpu.details["samples"] >= 3
    total = combine(components)
    assert total["energy_total_j"] == pytest.approx(sum(c.energy_j for c in components))
    assert total["method"] == "apple_powermetrics"


@pytest.fixture
def soc(monkeypatch: pytest.MonkeyPatch) -> FakeSoc:
    chip = FakeSoc(dram_mj=None)  # an M-series chip whose DRAM channel is not reported
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", fake_zeus_apple_silicon.module(chip))
    monkeypatch.setattr(apple.sys, "platform", "darwin")
    return chip


def test_zeus_reader_one_window_per_domain(soc: FakeSoc) -> None:
    meter = AppleSiliconMeter({})
    assert meter.describe()["reader"] == "zeus-apple-silicon"
    with meter:
        soc.mj["cpu_total_mj"] += 4_000
        soc.mj["gpu_mj"] += 12_500
        soc.mj["ane_mj"] += 300
    by_domain = {c.domain: c for c in meter.components}
    assert set(by_domain) == {"cpu", "gpu", "ane"}  # no dram: the chip did not report it
    assert by_domain["gpu"].energy_j == 12.5 and by_domain["cpu"].energy_j == 4.0
    assert all(c.method == "apple_ioreport" for c in meter.components)
    meter.close()


def test_zeus_mid_window_readings_chain_to_the_window_total(soc: FakeSoc) -> None:
    meter = AppleSiliconMeter({})
    meter.start()
    soc.mj["gpu_mj"] += 1_000
    assert meter.read_cumulative()["gpu"] == 1.0
    soc.mj["gpu_mj"] += 2_000
    assert meter.read_cumulative()["gpu"] == 3.0
    soc.mj["gpu_mj"] += 500
    gpu = next(c for c in meter.stop() if c.domain == "gpu")
    assert gpu.energy_j == 3.5  # the window itself, not the chain
    meter.start()  # reusable for the next window
    soc.mj["gpu_mj"] += 100
    assert next(c for c in meter.stop() if c.domain == "gpu").energy_j == 0.1


def test_without_zeus_and_without_root_it_says_how_to_enable_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    monkeypatch.setattr(apple.sys, "platform", "darwin")
    monkeypatch.setattr(apple.os, "geteuid", lambda: 501)
    with pytest.raises(MeterUnavailable, match="pip install zeus-apple-silicon, or run with sudo"):
        AppleSiliconMeter({})


def test_not_on_linux() -> None:
    with pytest.raises(MeterUnavailable, match="macOS"):
        AppleSiliconMeter({})
