"""Thermal gaps: fixed seconds, then until every GPU cooled to a temperature (fake NVML, fake
clock), at most max_s; a host without GPU temperatures waits only the fixed gap, said once."""

from __future__ import annotations

import sys

import pytest

from lembench.gaps import ThermalGap, gpu_temperatures
from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml


class Clock:
    """A fake clock; each sleep cools the GPUs by ``cooling`` °C per second."""

    def __init__(self, fake: FakePynvml | None = None, cooling: float = 1.0) -> None:
        self.t = 0.0
        self.fake, self.cooling = fake, cooling
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s
        for gpu in self.fake.gpus if self.fake else []:
            gpu.temp_c = max(30, round(gpu.temp_c - self.cooling * s))


def _gap(settings: dict, clock: Clock, notices: list[str]) -> ThermalGap:
    return ThermalGap(settings, notices.append, clock=clock.now, sleep=clock.sleep)


def test_waits_until_every_gpu_is_cool(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePynvml([FakeGpu(temp_c=70), FakeGpu(temp_c=52)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert gpu_temperatures() == [70.0, 52.0]
    clock, notices = Clock(fake), []
    rule = {"until_temperature_c": 45, "max_s": 120, "poll_s": 2}
    out = _gap({"gap_s": 5, "gap": rule}, clock, notices).wait()
    assert out.cooled is True and max(out.temperatures_c) <= 45
    assert clock.slept[0] == 5 and set(clock.slept[1:]) == {2}
    assert out.waited_s == pytest.approx(5 + 2 * len(clock.slept[1:]))
    assert 20 <= out.waited_s <= 30  # 70 °C at 1 °C/s: about 25 s, not a fixed 120
    assert notices == []


def test_gives_up_after_max_s_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePynvml([FakeGpu(temp_c=90)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    clock, notices = Clock(fake, cooling=0.1), []
    out = _gap(
        {"gap_s": 0, "gap": {"until_temperature_c": 45, "max_s": 10, "poll_s": 3}}, clock, notices
    ).wait()
    assert out.cooled is False and out.waited_s == pytest.approx(10)
    assert notices and "after gap.max_s=10 s" in notices[0]


def test_without_gpu_temperatures_only_the_fixed_gap_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    absent = FakePynvml(init_error=fake_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setitem(sys.modules, "pynvml", absent)
    clock, notices = Clock(), []
    gap = _gap(
        {"gap_s": 4, "gap": {"until_temperature_c": 45, "max_s": 60, "poll_s": 2}}, clock, notices
    )
    first, second = gap.wait(), gap.wait()
    assert clock.slept == [4, 4] and first.cooled is None and second.temperatures_c is None
    assert len(notices) == 1 and "waiting only gap_s=4 s" in notices[0]


def test_plain_gap_s_is_unchanged() -> None:
    clock, notices = Clock(), []
    assert _gap({"gap_s": 0}, clock, notices).wait().waited_s == 0 and clock.slept == []
    _gap({"gap_s": 3}, clock, notices).wait()
    assert clock.slept == [3]


def test_suite_gap_settings(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lembench.errors import UserError
    from lembench.suite import load_suite

    monkeypatch.chdir(tmp_path)
    body = (
        "name: g\ngap: {until_temperature_c: 45}\n"
        "experiment: {backend: pytorch, model: smollm2-135m}\n"
    )
    (tmp_path / "s.yaml").write_text("schema_version: 4\n" + body)
    assert load_suite("s.yaml").settings["gap"] == {
        "until_temperature_c": 45,
        "max_s": 120,
        "poll_s": 2,
    }
    (tmp_path / "s.yaml").write_text("schema_version: 3\n" + body)
    with pytest.raises(UserError, match=r"^s\.yaml: gap: needs schema_version: 4"):
        load_suite("s.yaml")
