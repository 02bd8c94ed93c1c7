"""Planning launches: load groups, cycles, orders, resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from lembench.plan import group_experiments, plan
from lembench.suite import load_suite

SUITE = """
schema_version: 1
name: plan-test
cycles: {cycles}
order: {order}
seed: 7
experiment:
  backend: pytorch
  model: smollm2-135m
  workload: {{kind: synthetic}}
sweep:
  precision: [fp32, bf16, fp16]
  batch_size: [1, 4]
"""


def _suite(tmp_path: Path, order: str = "interleaved", cycles: int = 2):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(order=order, cycles=cycles))
    return load_suite(path)


def test_load_groups_share_everything_but_batch(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    groups = group_experiments(suite)
    assert len(suite.experiments) == 6
    assert len(groups) == 3  # one per precision; batch sizes share a load
    for exps in groups.values():
        assert sorted(e.config["batch_size"] for e in exps) == [1, 4]
        assert len({e.config["precision"] for e in exps}) == 1


def test_interleaved_visits_every_group_once_per_cycle(tmp_path: Path) -> None:
    launches = plan(_suite(tmp_path, "interleaved", 3))
    assert [launch.cycle for launch in launches] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    first = [launch.group_id for launch in launches[:3]]
    assert [launch.group_id for launch in launches[3:6]] == first


def test_sequential_runs_all_cycles_of_a_group_back_to_back(tmp_path: Path) -> None:
    launches = plan(_suite(tmp_path, "sequential", 2))
    assert [launch.cycle for launch in launches] == [1, 2, 1, 2, 1, 2]
    assert launches[0].group_id == launches[1].group_id != launches[2].group_id


def test_shuffled_is_seeded_and_complete(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "shuffled", 4)
    a = [(x.group_id, x.cycle) for x in plan(suite)]
    b = [(x.group_id, x.cycle) for x in plan(suite)]
    assert a == b  # same seed, same order
    assert sorted(a) == sorted((g, c) for g in group_experiments(suite) for c in range(1, 5))
    per_cycle = [tuple(g for g, c in a if c == cycle) for cycle in range(1, 5)]
    assert len(set(per_cycle)) > 1  # the group order differs between cycles


def test_resume_skips_stored_runs(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "interleaved", 2)
    everything = plan(suite)
    done = frozenset((e.experiment_id, 1) for e in suite.experiments[:3])
    launches = plan(suite, done)
    remaining = sum(len(x.experiments) for x in launches)
    assert remaining == sum(len(x.experiments) for x in everything) - 3
    for launch in launches:
        for e in launch.experiments:
            assert (e.experiment_id, launch.cycle) not in done
    full = frozenset((e.experiment_id, c) for e in suite.experiments for c in (1, 2))
    assert plan(suite, full) == []


@pytest.mark.parametrize("order", ["sequential", "interleaved", "shuffled"])
def test_every_run_planned_once(tmp_path: Path, order: str) -> None:
    suite = _suite(tmp_path, order, 2)
    runs = [(e.experiment_id, x.cycle) for x in plan(suite) for e in x.experiments]
    assert len(runs) == len(set(runs)) == 12
