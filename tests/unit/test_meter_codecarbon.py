"""CodecarbonMeter with the real codecarbon (an estimate where RAPL is absent), and co2_grams."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from harness.contract.schemas import iter_errors
from harness.meters.base import MeterUnavailable
from harness.meters.carbon import co2_grams
from harness.meters.codecarbon import CodecarbonMeter

pytest.importorskip("codecarbon")


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_real_window_gives_labelled_estimates_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    meter = CodecarbonMeter({"country_iso_code": "USA", "region": None})
    with meter:
        _busy(0.5)
    cpu, dram = meter.components
    for c in (cpu, dram):
        assert not iter_errors("result", c.to_dict(), "/$defs/energy_component")
        assert (c.meter, c.method, c.is_estimate) == ("codecarbon", "estimate_codecarbon", True)
        assert c.energy_j > 0
        assert c.details["duration_s"] == pytest.approx(0.5, abs=0.15)
        assert c.details["codecarbon_version"]
    assert (cpu.domain, dram.domain) == ("cpu", "dram")
    # The estimate is explainable from its details: load model between 10 % and 100 % of TDP...
    tdp = cpu.details["tdp_w"]
    assert 0.1 * tdp * 0.99 <= cpu.details["avg_power_w"] <= tdp * 1.01
    assert cpu.details["cpu_model"] and cpu.details["tdp_source"]
    # ...and RAM is a constant power for the machine.
    assert dram.details["avg_power_w"] == pytest.approx(dram.details["ram_power_w"], rel=0.01)
    meter.close()
    assert list(tmp_path.iterdir()) == []  # no emissions.csv, no lock file
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # codecarbon's logger is quiet


def test_one_tracker_serves_several_windows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    meter = CodecarbonMeter({"country_iso_code": "FRA"})
    durations = []
    for seconds in (0.1, 0.3):
        meter.start()
        _busy(seconds)
        cpu, dram = meter.stop()
        durations.append(cpu.details["duration_s"])
        assert cpu.energy_j > 0 and dram.energy_j > 0
        assert cpu.details["stop_overhead_s"] < 0.1
    assert durations[1] > durations[0]
    desc = meter.describe()
    assert desc["name"] == "codecarbon" and desc["domains"] == ["cpu", "dram"]
    assert {"import", "setup", "warmup"} <= set(desc["timings_s"])
    assert desc["hardware"]["cpu_model"]
    meter.close()
    assert list(tmp_path.iterdir()) == []


def test_tracker_setup_overlaps_other_work_and_a_failed_setup_fails_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The constructor returns before codecarbon's hardware probe is done (it runs while the model
    loads); a probe that fails raises at the first window, in one line."""
    import codecarbon

    monkeypatch.chdir(tmp_path)
    real = codecarbon.OfflineEmissionsTracker

    def slow(
        *args, **kwargs
    ):  # a probe as slow as on a cold host (codecarbon caches it in-process)
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", slow)
    t0 = time.perf_counter()
    meter = CodecarbonMeter({"country_iso_code": "USA"})
    assert time.perf_counter() - t0 < 0.4  # did not wait for the probe
    with meter:  # the first window waits for it, then measures as usual
        _busy(0.2)
    assert meter.timings_s["setup"] >= 0.5 and meter.components[0].energy_j > 0
    meter.close()

    def broken(*args, **kwargs):
        raise OSError("no /proc/cpuinfo")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", broken)
    bad = CodecarbonMeter({"country_iso_code": "USA"})
    with pytest.raises(RuntimeError, match="codecarbon tracker failed to initialise: no /proc"):
        bad.start()
    bad.close()


def test_start_twice_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    meter = CodecarbonMeter({})
    meter.start()
    with pytest.raises(RuntimeError, match="already started"):
        meter.start()
    meter.close()  # ends the open window


def test_missing_codecarbon_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # import codecarbon -> ImportError
    with pytest.raises(MeterUnavailable, match="codecarbon is not installed"):
        CodecarbonMeter({})


# -- co2_grams ------------------------------------------------------------------------------------
def test_co2_from_country_intensity() -> None:
    grams, info = co2_grams(3.6e6, {"country_iso_code": "FRA", "region": None})  # 1 kWh
    assert info["method"] == "codecarbon_offline_grid_intensity"
    assert info["country_iso_code"] == "FRA" and info["region"] is None
    assert 10 < info["carbon_intensity_g_per_kwh"] < 200  # nuclear-heavy grid
    assert grams == pytest.approx(info["carbon_intensity_g_per_kwh"])
    grams_half, _ = co2_grams(1.8e6, {"country_iso_code": "FRA"})
    assert grams_half == pytest.approx(grams / 2)


def test_co2_regional_intensity_differs_from_national() -> None:
    _, usa = co2_grams(1.0, {"country_iso_code": "USA"})
    _, cal = co2_grams(1.0, {"country_iso_code": "USA", "region": "California"})
    assert (usa["level"], cal["level"]) == ("country", "region")
    assert cal["carbon_intensity_g_per_kwh"] != usa["carbon_intensity_g_per_kwh"]


def test_co2_of_no_energy_is_none() -> None:
    grams, info = co2_grams(None, {"country_iso_code": "DEU"})
    assert grams is None and info["carbon_intensity_g_per_kwh"] > 0


@pytest.mark.parametrize(
    ("measurement", "match"),
    [
        ({"country_iso_code": "XYZ"}, "unknown country_iso_code 'XYZ'"),
        ({"country_iso_code": "USA", "region": "atlantis"}, "unknown region 'atlantis'"),
        ({"country_iso_code": "SWE", "region": "SE9"}, "unknown region 'SE9'"),
    ],
)
def test_co2_unknown_place_is_a_one_line_error(measurement, match) -> None:
    with pytest.raises(ValueError, match=match) as info:
        co2_grams(1.0, measurement)
    assert "\n" not in str(info.value)


def test_cannot_be_read_mid_window() -> None:
    # codecarbon's figure exists only at stop(): the timeline leaves its domains out.
    from harness.meters.base import Meter

    assert CodecarbonMeter.read_cumulative is Meter.read_cumulative
    assert CodecarbonMeter.update_period_s == 1.0
