"""Planning: which harness processes to launch, in what order.

Experiments sharing a model load form a load group; each group is launched once per cycle, each
launch a fresh harness process. Orders: ``sequential`` (all cycles of a group back to back),
``interleaved`` (every group once per cycle, so slow drifts such as temperature spread over all
groups) and ``shuffled`` (interleaved, groups shuffled within each cycle with the suite's seed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from harness.contract.groups import load_group_id
from lembench.suite import Experiment, Suite


@dataclass(frozen=True)
class Launch:
    """One harness process: one load group, one cycle."""

    group_id: str
    cycle: int
    experiments: tuple[Experiment, ...]
    model: dict[str, Any]  # resolved model reference of the group


def group_experiments(suite: Suite) -> dict[str, list[Experiment]]:
    """Load group id -> its experiments, both in suite order."""
    groups: dict[str, list[Experiment]] = {}
    for exp in suite.experiments:
        groups.setdefault(load_group_id(exp.config), []).append(exp)
    return groups


def plan(suite: Suite, done: frozenset[tuple[str, int]] = frozenset()) -> list[Launch]:
    """The launches of ``suite`` in execution order, skipping (experiment_id, cycle) pairs in
    ``done`` (runs already stored, for ``--resume``)."""
    groups = group_experiments(suite)
    cycles = range(1, suite.settings["cycles"] + 1)
    order = suite.settings["order"]
    ids = list(groups)
    if order == "sequential":
        sequence = [(g, c) for g in ids for c in cycles]
    elif order == "interleaved":
        sequence = [(g, c) for c in cycles for g in ids]
    else:  # shuffled
        rng = random.Random(suite.settings["seed"])
        sequence = []
        for c in cycles:
            shuffled = ids[:]
            rng.shuffle(shuffled)
            sequence.extend((g, c) for g in shuffled)
    launches = []
    for group_id, cycle in sequence:
        todo = tuple(e for e in groups[group_id] if (e.experiment_id, cycle) not in done)
        if todo:
            model = suite.models[todo[0].experiment_id]
            launches.append(Launch(group_id, cycle, todo, model))
    return launches
