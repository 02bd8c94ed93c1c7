"""Idle baseline and its cache, with the fake pynvml, a fake powercap tree and a fake clock."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.meters.base import EnergyComponent, Meter
from harness.meters.nvml import NvmlMeter
from harness.meters.rapl import RaplMeter
from harness.window.baseline import LOAD_TOLERANCE_PCT, Baseline, cache_dir, measure_baseline
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml
from tests.fakes.powercap import add_uj, make_tree

GPU_W, CPU_W, DRAM_W = 60.0, 20.0, 5.0


class World:
    """A fake clock whose sleep advances the devices' energy counters at fixed idle powers."""

    def __init__(self, fake: FakePynvml, root: Path) -> None:
        self.fake, self.root = fake, root
        self.t = 1000.0
        self.wall = 1_700_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.t

    def now(self) -> float:
        return self.wall

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        self.wall += seconds
        for gpu in self.fake.gpus:
            gpu.energy_mj += round(GPU_W * 1000 * seconds)
        add_uj(self.root, "intel-rapl:0", round(CPU_W * 1e6 * seconds))
        add_uj(self.root, "intel-rapl:0:1", round(DRAM_W * 1e6 * seconds))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakePynvml([FakeGpu(energy_mj=0), FakeGpu(energy_mj=0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return World(fake, make_tree(tmp_path / "pc"))


def _meters(world: World) -> list:
    return [NvmlMeter({}, clock=world.clock), RaplMeter({}, root=world.root)]


def _measure(world: World, meters, tmp_path: Path, duration_s=10.0, cache_s=600.0, load_pct=3.0):
    return measure_baseline(
        meters,
        duration_s,
        cache_s,
        clock=world.clock,
        sleep=world.sleep,
        wall=world.now,
        folder=tmp_path / "cache",
        load_pct=load_pct,
    )


def test_idle_power_is_energy_over_duration(world: World, tmp_path: Path) -> None:
    meters = _meters(world)
    b = _measure(world, meters, tmp_path)
    assert isinstance(b, Baseline)
    # Quiet meters: MIN_WINDOWS windows of MIN_WINDOW_S reach the noise target; no 10 s wait.
    assert world.slept == [0.5, 0.5, 0.5]
    assert (b.windows, b.power_rel_se, b.target_met) == (3, pytest.approx(0.0), True)
    assert b.power_w == {
        "gpu": pytest.approx(2 * GPU_W),
        "cpu": pytest.approx(CPU_W),
        "dram": pytest.approx(DRAM_W),
    }
    assert b.devices == [
        {"id": "0", "domain": "gpu", "power_w": pytest.approx(GPU_W)},
        {"id": "1", "domain": "gpu", "power_w": pytest.approx(GPU_W)},
        {"id": "intel-rapl:0", "domain": "cpu", "power_w": pytest.approx(CPU_W)},
        {"id": "intel-rapl:0:1", "domain": "dram", "power_w": pytest.approx(DRAM_W)},
    ]
    assert b.duration_s == 1.5
    assert (b.cached, b.method, b.is_estimate) == (False, "nvml_counter+rapl", False)
    assert b.measured_at.startswith("2023-11-14T22:13:20")
    json.dumps(b.to_dict(), allow_nan=False)
    for m in meters:
        m.close()


def test_disabled_or_nothing_to_measure(world: World, tmp_path: Path) -> None:
    assert _measure(world, _meters(world), tmp_path, duration_s=0) is None
    assert _measure(world, [], tmp_path) is None
    assert world.slept == []


def test_cache_hit_miss_and_expiry(world: World, tmp_path: Path) -> None:
    meters = _meters(world)
    first = _measure(world, meters, tmp_path)
    assert first is not None and not first.cached
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    measured = len(world.slept)

    world.wall += 300  # within cache_s: reused, nothing measured
    hit = _measure(world, meters, tmp_path)
    assert hit is not None and hit.cached and len(world.slept) == measured
    assert hit.power_w == first.power_w and hit.devices == first.devices
    assert hit.measured_at == first.measured_at
    assert (hit.windows, hit.target_met) == (3, True)

    world.wall += 400  # 700 s old > 600: measured again
    again = _measure(world, meters, tmp_path)
    assert again is not None and not again.cached and len(world.slept) == 2 * measured

    assert not _measure(world, meters, tmp_path, cache_s=0).cached  # 0: never reused
    assert len(world.slept) == 3 * measured
    # It met the noise target: good for a longer requested cap too.
    assert _measure(world, meters, tmp_path, duration_s=30).cached
    world.wall -= 10_000  # clock went backwards: an entry "from the future" is not trusted
    assert not _measure(world, meters, tmp_path).cached
    for m in meters:
        m.close()


def test_key_includes_devices(world: World, tmp_path: Path, monkeypatch) -> None:
    meters = _meters(world)
    _measure(world, meters, tmp_path)
    for m in meters:
        m.close()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # another device set: another key
    meters = _meters(world)
    b = _measure(world, meters, tmp_path)
    assert b is not None and not b.cached
    assert b.power_w["gpu"] == pytest.approx(GPU_W)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2
    rapl_only = [meters[1]]
    assert not _measure(world, rapl_only, tmp_path).cached  # another meter set
    for m in meters:
        m.close()


@pytest.mark.parametrize(
    "content", ["", "{not json", "[]", '{"key": null}', '{"key": 1, "baseline": 2}']
)
def test_unreadable_cache_is_measured_over(world: World, tmp_path: Path, content: str) -> None:
    meters = _meters(world)
    _measure(world, meters, tmp_path)
    (path,) = (tmp_path / "cache").glob("*.json")
    path.write_text(content)
    b = _measure(world, meters, tmp_path)
    assert b is not None and not b.cached
    assert json.loads(path.read_text())["baseline"]["power_w"]["cpu"] == pytest.approx(CPU_W)
    for m in meters:
        m.close()


def test_damaged_entry_with_the_right_key_is_measured_over(world: World, tmp_path: Path) -> None:
    meters = _meters(world)
    _measure(world, meters, tmp_path)
    (path,) = (tmp_path / "cache").glob("*.json")
    entry = json.loads(path.read_text())
    del entry["baseline"]["power_w"]
    path.write_text(json.dumps(entry))
    assert not _measure(world, meters, tmp_path).cached
    for m in meters:
        m.close()


def test_unwritable_cache_is_not_an_error(world: World, tmp_path: Path) -> None:
    meters = _meters(world)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    b = measure_baseline(
        meters, 5.0, 600.0, clock=world.clock, sleep=world.sleep, folder=blocker / "cache"
    )
    assert b is not None and b.power_w["cpu"] == pytest.approx(CPU_W)
    for m in meters:
        m.close()


def test_cache_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEMBENCH_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path / "baselines"
    monkeypatch.delenv("LEMBENCH_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "lembench" / "baselines"


def test_meters_are_reusable_after_the_baseline(world: World, tmp_path: Path) -> None:
    meters = _meters(world)
    _measure(world, meters, tmp_path)
    for m in meters:
        m.start()
    world.sleep(2.0)
    totals = {c.domain: c.energy_j for m in meters for c in m.stop()}
    assert totals == {
        "gpu": pytest.approx(2 * 2 * GPU_W),
        "cpu": pytest.approx(2 * CPU_W),
        "dram": pytest.approx(2 * DRAM_W),
    }
    for m in meters:
        m.close()


def test_cache_is_never_reused_across_different_load(world: World, tmp_path: Path) -> None:
    """A baseline measured while the host was quiet is not subtracted from a busy host's window
    (nor the other way round): that gave negative net energy. Without a load figure, no reuse."""
    meters = _meters(world)
    assert not _measure(world, meters, tmp_path, load_pct=3.0).cached
    assert _measure(world, meters, tmp_path, load_pct=3.0 + LOAD_TOLERANCE_PCT).cached
    assert not _measure(world, meters, tmp_path, load_pct=55.0).cached  # busy now: measured
    assert _measure(world, meters, tmp_path, load_pct=50.0).cached  # the busy one, under busy
    assert not _measure(world, meters, tmp_path, load_pct=None).cached  # load unknown


def test_cache_is_per_boot(world: World, tmp_path: Path, monkeypatch) -> None:
    from harness.window import baseline as baseline_module

    meters = _meters(world)
    _measure(world, meters, tmp_path)
    assert _measure(world, meters, tmp_path).cached
    monkeypatch.setattr(baseline_module, "boot_id", lambda: "another-boot")
    assert not _measure(world, meters, tmp_path).cached
    entries = sorted((tmp_path / "cache").glob("*.json"))
    assert len(entries) == 2  # one per boot
    boots = {json.loads(p.read_text())["key"]["boot"] for p in entries}
    assert "another-boot" in boots and None not in boots


class NoisyMeter(Meter):
    """A meter of the outside world whose idle power alternates between ``powers`` (W), updated
    every ``update_period_s``: drives the noise-sized baseline."""

    name = "noisy"
    domains = ("cpu",)

    def __init__(self, world: World, powers: list[float], update_period_s: float) -> None:
        super().__init__({})
        self.world, self.powers, self.update_period_s = world, powers, update_period_s
        self.n = 0

    def start(self) -> None:
        self.t0 = self.world.clock()

    def stop(self) -> list[EnergyComponent]:
        power = self.powers[self.n % len(self.powers)]
        self.n += 1
        joules = power * (self.world.clock() - self.t0)
        return [EnergyComponent("noisy", "rapl", "cpu", False, joules)]


def test_window_length_follows_the_slowest_meter(world: World, tmp_path: Path) -> None:
    meter = NoisyMeter(world, [20.0], update_period_s=1.0)
    b = _measure(world, [meter], tmp_path)
    assert world.slept == [2.0, 2.0, 2.0]  # two update periods per window
    assert b is not None and b.power_w == {"cpu": pytest.approx(20.0)} and b.target_met


def test_noisy_meter_takes_the_whole_cap_and_says_so(world: World, tmp_path: Path) -> None:
    meter = NoisyMeter(world, [10.0, 30.0], update_period_s=0.1)
    b = _measure(world, [meter], tmp_path, duration_s=5.0)
    assert b is not None and sum(world.slept) == pytest.approx(5.0)  # the cap, in 0.5 s windows
    assert b.windows == 10 and b.target_met is False
    assert b.power_w == {"cpu": pytest.approx(20.0)}  # energy over time across all windows
    assert b.power_rel_se == pytest.approx(10.0 * (10 / 9) ** 0.5 / 10**0.5 / 20.0)  # sample SD
    # Short of the target, it is not good for a longer cap: measured again.
    assert not _measure(world, [meter], tmp_path, duration_s=30.0).cached


def test_fixed_rule_would_wait_the_whole_duration(world: World, tmp_path: Path) -> None:
    """The old rule slept the whole idle_baseline_s in one window; a quiet meter now stops at
    the noise target, far below the cap."""
    _measure(world, _meters(world), tmp_path, duration_s=10.0, cache_s=0)
    assert sum(world.slept) < 10.0 / 5
