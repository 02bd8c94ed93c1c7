"""CV-based warmup (harness.window.warmup) with a fake clock: each batch advances it by a set
latency."""

from __future__ import annotations

import statistics

import pytest

from harness.window.warmup import WarmupReport, coefficient_of_variation, warm_up


class FakeBatches:
    """run_batch + clock: batch i takes latencies[i] seconds of fake time (the last one repeats)."""

    def __init__(self, latencies: list[float]) -> None:
        self.latencies = latencies
        self.now = 100.0
        self.calls: list[int] = []

    def clock(self) -> float:
        return self.now

    def run_batch(self, i: int) -> None:
        self.calls.append(i)
        self.now += self.latencies[min(i, len(self.latencies) - 1)]


def run(fake: FakeBatches, runs: int, cv_threshold: float | None, **kw) -> WarmupReport:
    return warm_up(fake.run_batch, runs, cv_threshold, clock=fake.clock, **kw)


def test_fixed_count_without_threshold():
    fake = FakeBatches([3.0, 1.0, 1.0, 1.0])
    report = run(fake, 2, None)
    assert fake.calls == [0, 1]
    assert report.runs == 2
    assert report.latencies_s == pytest.approx([3.0, 1.0])
    assert report.converged is None
    assert report.final_cv is None  # fewer latencies than the window


def test_fixed_count_reports_the_final_cv():
    fake = FakeBatches([3.0, 1.0, 1.0, 1.0, 1.0])
    report = run(fake, 5, None)
    assert report.runs == 5
    assert report.final_cv == pytest.approx(0.0)
    assert report.converged is None


def test_zero_runs():
    fake = FakeBatches([1.0])
    report = run(fake, 0, None)
    assert (report.runs, report.latencies_s, fake.calls) == (0, [], [])


def test_converges_once_latencies_settle():
    # A cold first batch, a warming second, then steady: the last 3 settle after batch 4.
    fake = FakeBatches([5.0, 2.0, 1.0, 1.01, 0.99, 1.0])
    report = run(fake, 1, 0.05)
    assert report.converged is True
    assert report.runs == 5
    assert fake.calls == [0, 1, 2, 3, 4]
    expected = statistics.stdev([1.0, 1.01, 0.99]) / 1.0
    assert report.final_cv == pytest.approx(expected)
    assert report.final_cv < 0.05


def test_runs_is_a_minimum_even_when_converged_earlier():
    fake = FakeBatches([1.0])
    report = run(fake, 6, 0.1)
    assert report.runs == 6 and report.converged is True


def test_does_not_converge_within_max_runs():
    # Alternating latencies never settle: CV of (1, 2, 1) is 0.433.
    fake = FakeBatches([1.0 if i % 2 == 0 else 2.0 for i in range(50)])
    report = run(fake, 1, 0.1, max_runs=8)
    assert report.converged is False
    assert report.runs == 8
    assert len(report.latencies_s) == 8
    assert report.final_cv == pytest.approx(statistics.stdev([2.0, 1.0, 2.0]) / (5 / 3))


def test_threshold_is_strict():
    # CV exactly at the threshold is not below it.
    lat = [1.0, 2.0, 3.0]
    cv = statistics.stdev(lat) / 2.0
    fake = FakeBatches(lat)
    report = run(fake, 1, cv, max_runs=3)
    assert report.converged is False
    assert report.final_cv == pytest.approx(cv)


def test_cv_window_sets_the_minimum_and_the_window():
    fake = FakeBatches([1.0])
    report = run(fake, 1, 0.1, cv_window=5)
    assert report.runs == 5 and report.converged is True
    assert report.cv_window == 5 and report.cv_threshold == 0.1


def test_max_runs_below_the_minimum_is_raised_to_it():
    fake = FakeBatches([1.0, 3.0, 1.0, 3.0])
    report = run(fake, 4, 0.1, max_runs=2)
    assert report.runs == 4 and report.converged is False


def test_invalid_arguments():
    fake = FakeBatches([1.0])
    with pytest.raises(ValueError, match="cv_window"):
        run(fake, 1, 0.1, cv_window=1)
    with pytest.raises(ValueError, match="cv_threshold"):
        run(fake, 1, 0.0)
    with pytest.raises(ValueError, match="runs"):
        run(fake, -1, None)


def test_coefficient_of_variation():
    assert coefficient_of_variation([2.0, 2.0]) == 0.0
    assert coefficient_of_variation([0.0, 0.0, 0.0]) == 0.0
    assert coefficient_of_variation([1.0, 3.0]) == pytest.approx(statistics.stdev([1, 3]) / 2)
    with pytest.raises(ValueError):
        coefficient_of_variation([1.0])


def test_real_clock_default():
    calls = []
    report = warm_up(calls.append, 2, None)
    assert calls == [0, 1] and report.runs == 2
    assert all(t >= 0 for t in report.latencies_s)


def test_to_dict():
    fake = FakeBatches([1.0])
    d = run(fake, 3, 0.5).to_dict()
    assert d == {
        "runs": 3,
        "latencies_s": [1.0, 1.0, 1.0],
        "final_cv": 0.0,
        "converged": True,
        "cv_threshold": 0.5,
        "cv_window": 3,
        "reused": False,
    }


def test_warmup_key_holds_the_shape_only_where_shapes_warm_separately():
    from harness.window.warmup import warmup_key

    one = {"batch_size": 1, "warmup": {"runs": 1}, "workload": {"kind": "synthetic"}}
    four = {**one, "batch_size": 4}
    assert warmup_key(one, per_shape=False) == warmup_key(four, per_shape=False)
    assert warmup_key(one, per_shape=True) != warmup_key(four, per_shape=True)
    longer = {**one, "warmup": {"runs": 3}}  # another warmup request is always its own key
    assert warmup_key(one, per_shape=False) != warmup_key(longer, per_shape=False)
