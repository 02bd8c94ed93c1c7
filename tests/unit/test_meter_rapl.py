"""RaplMeter against a fake powercap sysfs tree in tmp_path."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from harness.contract.schemas import iter_errors
from harness.meters import rapl
from harness.meters.base import MeterUnavailable
from harness.meters.rapl import RaplMeter
from tests.fakes.powercap import MAX, add_uj, make_tree, make_zone, set_uj


def _valid(component) -> None:
    errors = iter_errors("result", component.to_dict(), "/$defs/energy_component")
    assert not errors, errors[0].message


def test_single_socket_package_and_dram(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "powercap")
    meter = RaplMeter({}, root=root)
    assert meter.domains == ("cpu", "dram")
    with meter:
        add_uj(root, "intel-rapl:0", 5_000_000)
        add_uj(root, "intel-rapl:0:1", 1_250_000)
        add_uj(root, "intel-rapl:0:0", 3_000_000)  # core is inside the package figure
    cpu, dram = meter.components
    for c in (cpu, dram):
        _valid(c)
        assert (c.meter, c.method, c.is_estimate) == ("rapl", "rapl", False)
    assert (cpu.domain, cpu.energy_j) == ("cpu", 5.0)
    assert (dram.domain, dram.energy_j) == ("dram", 1.25)
    assert cpu.devices == [{"id": "intel-rapl:0", "name": "package-0", "energy_j": 5.0}]
    assert dram.devices == [{"id": "intel-rapl:0:1", "name": "dram", "energy_j": 1.25}]
    meter.close()


def test_wraparound(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pc", dram=False, max_range=1_000_000)
    set_uj(root, "intel-rapl:0", 999_000)
    meter = RaplMeter({}, root=root)
    assert meter.domains == ("cpu",)
    meter.start()
    set_uj(root, "intel-rapl:0", 4_000)  # wrapped: 1_000 to the top, then 4_000
    (cpu,) = meter.stop()
    assert cpu.energy_j == pytest.approx(0.005)
    meter.close()


def test_several_wraps_in_one_window_are_counted(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pc", dram=False, max_range=1_000_000)
    meter = RaplMeter({}, root=root, sample_interval_s=0.02)
    meter.start()
    for _ in range(5):  # 5 x 0.6 J = 3 J: the counter wraps 3 times
        add_uj(root, "intel-rapl:0", 600_000, max_range=1_000_000)
        time.sleep(0.25)  # several sampling periods: the thread sees every step
    (cpu,) = meter.stop()
    assert cpu.energy_j == pytest.approx(3.0)
    assert cpu.details["samples"] >= 5
    meter.close()


def test_two_sockets_are_summed_per_domain(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pc", sockets=2)
    meter = RaplMeter({}, root=root)
    with meter:
        add_uj(root, "intel-rapl:0", 2_000_000)
        add_uj(root, "intel-rapl:1", 3_000_000)
        add_uj(root, "intel-rapl:0:1", 100_000)
        add_uj(root, "intel-rapl:1:1", 200_000)
    cpu, dram = meter.components
    assert cpu.energy_j == pytest.approx(5.0) and dram.energy_j == pytest.approx(0.3)
    assert [d["id"] for d in cpu.devices] == ["intel-rapl:0", "intel-rapl:1"]
    assert [d["energy_j"] for d in dram.devices] == [pytest.approx(0.1), pytest.approx(0.2)]
    assert [z["zone"] for z in meter.describe()["zones"]] == [
        "intel-rapl:0",
        "intel-rapl:0:1",
        "intel-rapl:1",
        "intel-rapl:1:1",
    ]
    meter.close()


def test_subzones_only_nested_and_psys_ignored(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    pkg = make_zone(root / "intel-rapl:0", "package-0", 0, MAX)
    make_zone(pkg / "intel-rapl:0:0", "dram", 0, MAX)  # no top-level link
    make_zone(root / "intel-rapl:1", "psys", 0, MAX)  # platform: overlaps the package
    meter = RaplMeter({}, root=root)
    assert [(z["zone"], z["domain"]) for z in meter.describe()["zones"]] == [
        ("intel-rapl:0", "cpu"),
        ("intel-rapl:0:0", "dram"),
    ]
    meter.close()


def test_meter_is_reused_for_several_windows(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pc", dram=False)
    meter = RaplMeter({}, root=root)
    energies = []
    for step in (1_000_000, 2_000_000):
        meter.start()
        add_uj(root, "intel-rapl:0", step)
        energies.append(meter.stop()[0].energy_j)
    assert energies == [1.0, 2.0]
    meter.close()


def test_absent_root_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="absent"):
        RaplMeter({}, root=tmp_path / "nope")


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(tmp_path / "nope"))
    with pytest.raises(MeterUnavailable, match=str(tmp_path / "nope")):
        RaplMeter({})
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(make_tree(tmp_path / "pc")))
    assert RaplMeter({}).describe()["root"] == str(tmp_path / "pc")


def test_no_package_zone_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "pc" / "intel-rapl").mkdir(parents=True)
    with pytest.raises(MeterUnavailable, match="no intel-rapl package zone"):
        RaplMeter({}, root=tmp_path / "pc")


def test_unreadable_counter_is_unavailable_not_zero(tmp_path, monkeypatch) -> None:
    # Tests run as root, where chmod 000 does not deny reading; fail the read like the kernel does.
    root = make_tree(tmp_path / "pc")
    real = rapl._read_int

    def denied(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "_read_int", denied)
    with pytest.raises(MeterUnavailable, match=r"not readable \(permission denied\).*chmod a\+r"):
        RaplMeter({}, root=root)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unreadable_counter_for_a_real_unprivileged_user() -> None:
    # The real thing: root-only energy_uj (0400, as since the PLATYPUS fix), read by "nobody".
    top = Path(tempfile.mkdtemp(prefix="lembench-rapl-"))
    try:
        top.chmod(0o755)
        root = make_tree(top / "pc")
        for path in root.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o444)
        for path in root.rglob("energy_uj"):
            path.chmod(0o400)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop privileges and try
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                try:
                    RaplMeter({}, root=root)
                    message = "constructed"
                except MeterUnavailable as exc:
                    message = str(exc)
                os.write(write_fd, message.encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        message = os.read(read_fd, 4096).decode()
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert "not readable (permission denied)" in message
        assert f"chmod a+r {root}/intel-rapl:*/energy_uj" in message
    finally:
        shutil.rmtree(top)


def test_describe(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pc")
    desc = RaplMeter({}, root=root, sample_interval_s=0.5).describe()
    assert desc["name"] == "rapl" and desc["domains"] == ["cpu", "dram"]
    assert desc["root"] == str(root) and desc["sample_interval_s"] == 0.5
    assert desc["zones"][0] == {
        "zone": "intel-rapl:0",
        "name": "package-0",
        "domain": "cpu",
        "max_energy_range_uj": MAX,
    }


def test_read_cumulative(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pc", max_range=1_000_000)
    meter = RaplMeter({}, root=root, sample_interval_s=3600)
    assert meter.update_period_s == 0.001
    assert meter.read_cumulative() is None
    meter.start()
    assert meter.read_cumulative() == {"cpu": 0.0, "dram": 0.0}
    add_uj(root, "intel-rapl:0", 900_000, max_range=1_000_000)
    add_uj(root, "intel-rapl:0:1", 200_000, max_range=1_000_000)
    assert meter.read_cumulative() == {"cpu": pytest.approx(0.9), "dram": pytest.approx(0.2)}
    add_uj(root, "intel-rapl:0", 300_000, max_range=1_000_000)  # wraps; seen by the next read
    assert meter.read_cumulative()["cpu"] == pytest.approx(1.2)
    cpu, dram = meter.stop()
    assert (cpu.energy_j, dram.energy_j) == (pytest.approx(1.2), pytest.approx(0.2))
    assert meter.read_cumulative() is None
    meter.close()


def test_read_cumulative_is_thread_safe(tmp_path: Path) -> None:
    # Readers in 4 threads race the 1 ms sampling thread over a counter that keeps wrapping:
    # every reader sees a non-decreasing series and the window total stays exact.
    max_range = 1_000_000
    root = make_tree(tmp_path / "pc", dram=False, max_range=max_range)
    meter = RaplMeter({}, root=root, sample_interval_s=0.001)
    meter.start()
    stop = threading.Event()
    series: list[list[float]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def reader(out: list[float]) -> None:
        try:
            while not stop.is_set():
                out.append(meter.read_cumulative()["cpu"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(s,)) for s in series]
    for t in threads:
        t.start()
    for step in range(1, 51):  # 50 x 0.1 J = 5 J: five wraps
        add_uj(root, "intel-rapl:0", 100_000, max_range=max_range)
        # Let some reader see this step before the next: two wraps between reads cannot be told
        # apart from one (by design, the sampling period is far below the wrap period).
        deadline = time.perf_counter() + 5
        while max((s[-1] for s in series if s), default=0) < step * 0.1 - 1e-9:
            assert time.perf_counter() < deadline, "no reader made progress"
            time.sleep(0.0005)
    stop.set()
    for t in threads:
        t.join()
    (cpu,) = meter.stop()
    assert not errors
    assert cpu.energy_j == pytest.approx(5.0)
    for s in series:
        assert s and all(b >= a for a, b in itertools.pairwise(s))
        assert s[-1] <= 5.0 + 1e-9
    meter.close()
