"""Timeline sampling with the fake pynvml, a fake powercap tree and fake clocks/CPU times."""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest

from harness.contract.timeline_file import read_timeline, write_timeline
from harness.hardware.telemetry import Telemetry
from harness.meters.nvml import NvmlMeter
from harness.meters.rapl import RaplMeter
from harness.window.timeline import Timeline, next_deadline
from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml
from tests.fakes.powercap import add_uj, make_tree

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> FakePynvml:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakePynvml([FakeGpu(energy_mj=0, power_mw=250_000, temp_c=60)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


class FakeClock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeCpu:
    """psutil.cpu_times() stand-in: advance busy/idle seconds by hand."""

    def __init__(self) -> None:
        self.busy = 100.0
        self.idle = 900.0
        self.guest = 0.0

    def __call__(self) -> CpuTimes:
        # guest time is inside user on Linux (and must not be counted twice).
        return CpuTimes(self.busy, 0.0, 0.0, self.idle, 0.0, 0.0, 0.0, 0.0, self.guest, 0.0)


def _advance_while(seconds: float, step, every: float = 0.005) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        step()
        time.sleep(every)


def test_samples_cover_the_window_with_monotonic_energy(gpu, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pc")
    meters = [NvmlMeter({}), RaplMeter({}, root=root)]
    tel = Telemetry.open()

    def step() -> None:
        gpu.gpus[0].energy_mj += 1000
        add_uj(root, "intel-rapl:0", 2000)
        add_uj(root, "intel-rapl:0:1", 500)

    for m in meters:
        m.start()
    t0 = time.perf_counter()
    timeline = Timeline(meters, 0.02, tel)
    timeline.start(t0)
    _advance_while(0.3, step)
    t1 = time.perf_counter()
    samples = timeline.stop()
    components = {c.domain: c for m in meters for c in m.stop()}

    expected = 0.3 / 0.02 + 2  # periodic samples plus the two edges
    assert 5 <= len(samples) <= expected + 2  # exact counts: the fake-time tests below
    assert samples[0]["t_s"] == 0.0
    assert t1 - t0 <= samples[-1]["t_s"] < t1 - t0 + 0.5
    times = [s["t_s"] for s in samples]
    assert times == sorted(times)
    for domain in ("gpu", "cpu", "dram"):
        series = [s["energy_j"][domain] for s in samples]
        assert all(b >= a for a, b in itertools.pairwise(series)), domain
        assert series[-1] > series[0]
        # The stop sample is the meters' window total (nothing changed in between).
        assert series[-1] == pytest.approx(components[domain].energy_j)
    for s in samples:
        assert s["power_w"] == {"gpu": 250.0}
        assert s["gpus"][0]["temp_c"] == 60 and s["gpus"][0]["id"] == "0"
    assert samples[0]["cpu_util_pct"] is None
    assert all(0 <= s["cpu_util_pct"] <= 100 for s in samples[1:] if s["cpu_util_pct"] is not None)
    assert timeline.errors == 0 and timeline.first_error is None
    assert timeline.fields() == [
        "t_s",
        "energy_j.cpu",
        "energy_j.dram",
        "energy_j.gpu",
        "power_w.gpu",
        "gpus",
        "cpu_util_pct",
    ]
    stats = timeline.stats()
    assert stats["samples"] == len(samples) and stats["sampler_cpu_s"] >= 0
    for m in meters:
        m.close()
    assert tel is not None
    tel.close()


def test_edges_with_a_fake_clock_and_cpu_times(tmp_path: Path) -> None:
    clock, cpu = FakeClock(), FakeCpu()
    timeline = Timeline([], 3600.0, None, clock, cpu_times=cpu)  # no periodic sample
    t0 = clock.t
    clock.t += 0.004  # start() comes a moment after t0: the start sample is still 0.0
    timeline.start(t0)
    clock.t += 2.5
    cpu.busy += 3.0  # 3 busy seconds, 1 idle, 1 of the busy ones is guest (inside user)
    cpu.idle += 1.0
    cpu.guest += 1.0
    samples = timeline.stop()
    assert samples == [
        {"t_s": 0.0, "energy_j": {}, "power_w": {}, "gpus": [], "cpu_util_pct": None},
        {"t_s": 2.504, "energy_j": {}, "power_w": {}, "gpus": [], "cpu_util_pct": 75.0},
    ]
    assert timeline.fields() == ["t_s", "cpu_util_pct"]
    assert timeline.stop() is samples  # idempotent: no extra sample
    assert len(samples) == 2


def test_stop_without_start_and_double_start() -> None:
    timeline = Timeline([], 0.1, None)
    assert timeline.stop() == []
    timeline = Timeline([], 0.1, None)
    timeline.start(time.perf_counter())
    with pytest.raises(RuntimeError):
        timeline.start(time.perf_counter())
    timeline.stop()
    with pytest.raises(ValueError):
        Timeline([], 0, None)


def test_read_errors_are_counted_never_raised(gpu, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pc", dram=False)
    rapl = RaplMeter({}, root=root, sample_interval_s=3600)  # its own thread stays out of it
    calls = {"n": 0}

    def flaky_power() -> int:
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            raise fake_pynvml.NVMLError(fake_pynvml.NVML_ERROR_GPU_IS_LOST)
        return 100_000

    gpu.gpus[0].power_mw = flaky_power
    tel = Telemetry.open()
    rapl.start()
    timeline = Timeline([rapl], 0.01, tel)
    timeline.start(time.perf_counter())
    counter = root / "intel-rapl:0" / "energy_uj"
    saved = counter.read_text()
    counter.unlink()  # the counter disappears for a while
    time.sleep(0.1)
    counter.write_text(saved)
    time.sleep(0.05)
    samples = timeline.stop()  # does not raise
    assert timeline.errors >= 2
    assert timeline.first_error is not None
    assert "FileNotFoundError" in timeline.first_error or "GpuIsLost" in timeline.first_error
    missing = [s for s in samples if "cpu" not in s["energy_j"]]
    assert missing and len(missing) < len(samples)  # sampling went on, and recovered
    assert any(s["gpus"] == [] and s["power_w"] == {} for s in samples)  # failed telemetry reads
    assert any(s["gpus"] for s in samples)
    assert timeline.stats()["errors"] == timeline.errors
    rapl.stop()
    rapl.close()
    assert tel is not None
    tel.close()


class FakeTime:
    """A clock and a wait for the sampling thread: waiting advances the clock, and the thread is
    told to end after ``waits`` waits. ``cost`` is what each telemetry read takes (in fake time)."""

    def __init__(self, waits: int, cost: float = 0.0) -> None:
        self.t = 10.0
        self.waits_left = waits
        self.cost = cost
        self.stall: dict[int, float] = {}  # read number -> extra cost
        self.reads = 0
        self.waited: list[float] = []

    def clock(self) -> float:
        return self.t

    def wait(self, seconds: float) -> bool:
        if self.waits_left == 0:
            return True
        self.waits_left -= 1
        self.waited.append(round(seconds, 9))
        self.t += seconds
        return False

    def read(self) -> list[dict]:  # Telemetry.read stand-in
        self.reads += 1
        self.t += self.cost + self.stall.get(self.reads, 0.0)
        return []


def _run_fake(fake: FakeTime, interval: float) -> list[dict]:
    timeline = Timeline([], interval, fake, fake.clock, cpu_times=FakeCpu(), wait=fake.wait)  # type: ignore[arg-type]
    timeline.start(fake.t)
    timeline._thread.join()  # the fake wait ends the thread by itself
    return timeline.stop()


def test_sample_count_is_duration_over_interval_plus_two() -> None:
    fake = FakeTime(waits=50)
    samples = _run_fake(fake, 0.1)
    assert len(samples) == 50 + 2  # 50 periodic samples (5 s at 10 Hz) and the two edges
    assert [s["t_s"] for s in samples[:4]] == [0.0, 0.1, 0.2, 0.3]
    assert samples[-1]["t_s"] == pytest.approx(5.0)


def test_deadlines_not_fixed_sleeps() -> None:
    # Each sample costs 60% of the interval: the thread waits only for the rest, so samples stay
    # on the t0 + k x interval grid (fixed sleeps would drift by the cost at every sample).
    fake = FakeTime(waits=20, cost=0.015)
    samples = _run_fake(fake, 0.025)
    assert fake.waited == [pytest.approx(0.010)] * 20
    periodic = [s["t_s"] for s in samples[1:-1]]
    assert periodic == [pytest.approx(0.025 * k) for k in range(1, 21)]


def test_a_stall_skips_deadlines_instead_of_bursting() -> None:
    fake = FakeTime(waits=10)
    fake.stall = {3: 0.205}  # the second periodic read stalls for over 10 intervals
    samples = _run_fake(fake, 0.02)
    periodic = [s["t_s"] for s in samples[1:-1]]
    # 0.02 and 0.04 on time; the stall ends at 0.245, so 0.06..0.24 are skipped, not caught up.
    assert periodic[:4] == [pytest.approx(t) for t in (0.02, 0.04, 0.26, 0.28)]
    assert min(fake.waited) > 0


def test_next_deadline() -> None:
    assert next_deadline(1, 0.1003, 0.1) == 2  # on time
    assert next_deadline(1, 0.35, 0.1) == 4  # stalled: 0.2 and 0.3 are skipped
    assert next_deadline(5, 0.0, 0.1) == 6  # never backwards


def test_real_thread_keeps_roughly_to_the_rate() -> None:
    timeline = Timeline([], 0.02, None)
    timeline.start(time.perf_counter())
    time.sleep(0.3)
    samples = timeline.stop()
    assert 5 <= len(samples) <= 0.3 / 0.02 + 3  # loose: CI machines can stall threads
    stats = timeline.stats()
    assert stats["samples"] == len(samples) and stats["achieved_hz"] > 0


def test_read_cumulative_from_the_timeline_thread_while_rapl_samples(tmp_path: Path) -> None:
    # The RAPL thread (1 ms) and the timeline (5 ms) both read and accumulate the same counters
    # while the counter advances and wraps: the total must come out exact.
    max_range = 1_000_000
    root = make_tree(tmp_path / "pc", dram=False, max_range=max_range)
    rapl = RaplMeter({}, root=root, sample_interval_s=0.001)
    rapl.start()
    timeline = Timeline([rapl], 0.005, None)
    timeline.start(time.perf_counter())
    for _ in range(40):  # 40 x 0.1 J = 4 J: the counter wraps 4 times
        add_uj(root, "intel-rapl:0", 100_000, max_range=max_range)
        time.sleep(0.005)
    samples = timeline.stop()
    (cpu,) = rapl.stop()
    assert cpu.energy_j == pytest.approx(4.0)
    series = [s["energy_j"]["cpu"] for s in samples]
    assert all(b >= a for a, b in itertools.pairwise(series))
    assert series[-1] == pytest.approx(4.0)
    assert timeline.errors == 0
    rapl.close()


def test_write_and_read_back(tmp_path: Path) -> None:
    clock = FakeClock()
    timeline = Timeline([], 3600.0, None, clock, cpu_times=FakeCpu())
    timeline.start(clock.t)
    clock.t += 1.0
    samples = timeline.stop()
    path = tmp_path / "timelines" / "abc.jsonl"
    write_timeline(path, samples)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    assert read_timeline(path) == samples
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_sampler_thread_is_a_daemon_and_joined() -> None:
    timeline = Timeline([], 0.01, None)
    timeline.start(time.perf_counter())
    (thread,) = [t for t in threading.enumerate() if t.name == "lembench-timeline"]
    assert thread.daemon
    timeline.stop()
    assert not thread.is_alive()
