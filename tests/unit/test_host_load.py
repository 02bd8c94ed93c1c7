"""Busy-host detection from plain inputs: a fake psutil module (the interface of psutil's
cpu_times / Process / cpu_percent / cpu_count) and process lists as the telemetry gives them."""

from __future__ import annotations

from collections import namedtuple

import pytest

from harness.window import host_load as hl

SysTimes = namedtuple("SysTimes", "user nice system idle iowait irq softirq steal guest guest_nice")
ProcTimes = namedtuple("ProcTimes", "user system children_user children_system iowait")
ChildTimes = namedtuple("ChildTimes", "user system children_user children_system")


class FakePsutil:
    """What psutil 5.9+/7 returns on Linux, driven by the test."""

    class NoSuchProcess(Exception):
        pass

    class AccessDenied(Exception):
        pass

    def __init__(self) -> None:
        self.busy = {"user": 100.0, "nice": 0.0, "system": 20.0, "irq": 0.0, "softirq": 1.0}
        self.own = 5.0
        self.child = 1.0
        self.percent = 3.0
        self.cpus = 4

    def cpu_times(self) -> SysTimes:
        b = self.busy
        return SysTimes(
            b["user"], b["nice"], b["system"], 9999.0, 7.0, b["irq"], b["softirq"], 50.0, 3.0, 0.0
        )

    def Process(self):  # psutil's name
        fake = self

        class _Child:
            def cpu_times(self):
                return ChildTimes(fake.child, 0.0, 0.0, 0.0)

        class _Proc:
            def cpu_times(self):
                return ProcTimes(fake.own, 0.0, 0.0, 0.0, 0.0)

            def children(self, recursive=False):
                return [_Child()]

        return _Proc()

    def cpu_percent(self, interval=None):
        return self.percent

    def cpu_count(self):
        return self.cpus


def _window(ps: FakePsutil, other_s: float, own_s: float) -> tuple:
    before = hl.cpu_snapshot(ps, clock=lambda: 0.0)
    ps.busy["user"] += other_s + own_s
    ps.own += own_s
    after = hl.cpu_snapshot(ps, clock=lambda: 10.0)
    return before, after


def test_other_processes_cpu_time_is_system_busy_minus_ours() -> None:
    ps = FakePsutil()
    before, after = _window(ps, other_s=10.0, own_s=15.0)  # one of 4 cores busy for 10 s: 25%
    load = hl.host_load(before, after, cpus=4, window_s=10.0, load_before_pct=2.0, gpu_others=None)
    assert load.own_cpu_s == pytest.approx(15.0)
    assert load.other_cpu_s == pytest.approx(10.0)
    assert load.other_cpu_pct == pytest.approx(25.0)
    assert load.busy
    w = hl.busy_host_warning(load)
    assert (
        w["code"] == "busy_host" and "10 CPU-s in the 10 s window (25% of 4 cores)" in w["message"]
    )


def test_quiet_host_has_no_warning() -> None:
    ps = FakePsutil()
    before, after = _window(ps, other_s=0.5, own_s=15.0)
    load = hl.host_load(before, after, cpus=4, window_s=10.0, load_before_pct=2.0, gpu_others=0)
    assert not load.busy and hl.busy_host_warning(load) is None
    assert load.to_dict()["other_cpu_pct"] == pytest.approx(1.25)


def test_load_before_the_baseline_or_foreign_gpu_processes_make_it_busy() -> None:
    quiet = hl.host_load(None, None, cpus=2, window_s=1.0, load_before_pct=60.0, gpu_others=None)
    assert quiet.busy and quiet.other_cpu_s is None
    assert "before the idle baseline was 60%" in hl.busy_host_warning(quiet)["message"]
    gpu = hl.host_load(None, None, cpus=2, window_s=1.0, load_before_pct=None, gpu_others=2)
    assert gpu.busy and "2 GPU process(es) not ours" in hl.busy_host_warning(gpu)["message"]


def test_gpu_processes_not_ours() -> None:
    procs = [{"id": "0", "pid": 10}, {"id": "0", "pid": 11}, {"id": "1", "pid": 12, "ours": True}]
    assert hl.other_gpu_processes(procs, [10]) == 1
    assert hl.other_gpu_processes([], [10]) == 0
    assert hl.other_gpu_processes(None, [10]) is None  # no GPU telemetry
    assert hl.other_gpu_processes([{"pid": 99}], [10]) is None  # pids not comparable


def test_fake_psutil_readings() -> None:
    ps = FakePsutil()
    assert hl.load_before_baseline(ps) == 3.0 and hl.cpu_count(ps) == 4
    snap = hl.cpu_snapshot(ps)
    assert snap.busy_s == pytest.approx(121.0)  # steal and guest are not added
    assert snap.own_s == pytest.approx(6.0)  # the process and its live child


def test_real_psutil_snapshot_reads() -> None:
    snap = hl.cpu_snapshot()
    assert snap is not None and snap.busy_s > 0 and snap.own_s > 0
