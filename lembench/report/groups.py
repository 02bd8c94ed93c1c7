"""Like with like: leaderboard groups (hardware x task), ranks and ratings within a group, and each
group's summary (best J/token, best tok/s, Pareto front).

An L4 row ranked against H100 rows, or a 32-token workload against a 2048-token one, says nothing
about either. So the report ranks only within a *group*: the same hardware and the same task (the
workload's request shape, without its prompt count, which is a sample size and not another job).
The all-rows view keeps every row but shows no rank across groups.

The rating is relative, computed from the data of one group (in the spirit of AI Energy Score's
1-5 stars within a task class): the measured rows of a group are ordered by mean gross J/output
token and split into fifths by rank; the best fifth gets 5 stars, the worst 1. A group with a single
measured row has nothing to be rated against, so its row gets no rating.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lembench.report.charts import Point as _Point
from lembench.report.charts import pareto_front

if TYPE_CHECKING:
    from lembench.report.table import Row

#: Stars of the relative rating (1..STARS).
STARS = 5

RATING_RULE = (
    "Within one group (same hardware, same task), measured rows are ordered by mean gross J per "
    "output token and split into fifths by rank: rank r of k gets 5 - floor(5 x (r - 1) / k) "
    "stars (the best fifth 5, the worst fifth 1). It compares a row with the others in this "
    "report only; a group with one measured row is not rated, and estimates are never rated."
)


def task_label(workload: Any) -> str:
    """The request shape of a workload without its prompt count (``synthetic 256->128``,
    ``humaneval ->128``); tolerant of untrusted input."""
    if not isinstance(workload, dict):
        return "?" if workload is None else str(workload)
    kind = str(workload.get("kind", "?"))
    out = workload.get("output_tokens", "?")
    if kind == "synthetic":
        return f"synthetic {workload.get('input_tokens', '?')}->{out}"
    if kind == "jsonl":
        name = str(workload.get("path", "?")).replace("\\", "/").rsplit("/", 1)[-1]
        return f"jsonl {name} ->{out}"
    return f"{kind} ->{out}"


def group_label(hardware: str, task: str) -> str:
    """The display name of a group (also its key on the page)."""
    return f"{hardware} · {task}"


def stars(rank: int, k: int) -> int | None:
    """The rating of rank ``rank`` (1 = lowest J/token) among ``k`` measured rows (None: k < 2)."""
    if k < 2 or not 1 <= rank <= k:
        return None
    return STARS - math.floor(STARS * (rank - 1) / k)


def rank_within_groups(rows: list[Row]) -> None:
    """Set ``rank`` and ``rating`` of every measured row within its group (rows must already be
    in J/token order within a section: ``table.order_and_rank`` sorts them)."""
    by_group: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        row.rank = None
        row.rating = None
        if row.energy_class == "measured":
            by_group[row.group].append(row)
    for members in by_group.values():
        for i, row in enumerate(members, start=1):
            row.rank = i
            row.rating = stars(i, len(members))


@dataclass
class Best:
    """A group's best row for one metric."""

    value: float
    model: str
    href: str
    label: str


@dataclass
class GroupSummary:
    """What a group's summary card shows."""

    key: str
    hardware: str
    task: str
    n_rows: int
    n_measured: int
    n_estimated: int
    best_j: Best | None = None
    best_tput: Best | None = None
    front: list[Best] = field(default_factory=list)


def _describe(row: Row) -> str:
    return f"{row.model} · {row.backend} {row.precision} · batch {row.batch_size}"


def summarise_groups(rows: list[Row]) -> list[GroupSummary]:
    """One summary per group, groups by number of rows (largest first), then name. Best values
    and the Pareto front come from measured rows only (estimates are never ranked)."""
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row.group].append(row)
    out = []
    for key, members in grouped.items():
        measured = [r for r in members if r.energy_class == "measured"]
        summary = GroupSummary(
            key=key,
            hardware=members[0].hardware,
            task=members[0].task,
            n_rows=len(members),
            n_measured=len(measured),
            n_estimated=sum(r.energy_class == "estimate" for r in members),
        )
        with_j = [(r, r.stat("j_per_output_token").mean) for r in measured]
        with_j = [(r, j) for r, j in with_j if j is not None]
        if with_j:
            r, j = min(with_j, key=lambda p: p[1])
            summary.best_j = Best(j, r.model, r.exp.page, _describe(r))
        with_t = [(r, r.stat("throughput_out_tok_s").mean) for r in measured]
        with_t = [(r, t) for r, t in with_t if t is not None]
        if with_t:
            r, t = max(with_t, key=lambda p: p[1])
            summary.best_tput = Best(t, r.model, r.exp.page, _describe(r))
        points = {}
        for r in measured:
            j, t = r.stat("j_per_output_token").mean, r.stat("throughput_out_tok_s").mean
            if j is not None and t is not None and j > 0 and t > 0:
                points[id(r)] = (r, _Point(x=t, y=j, label="", href="", group=""))
        front = pareto_front([p for _, p in points.values()])
        on_front = {id(p) for p in front}
        summary.front = [
            Best(p.y, r.model, r.exp.page, _describe(r))
            for r, p in sorted(points.values(), key=lambda rp: rp[1].x)
            if id(p) in on_front
        ]
        out.append(summary)
    return sorted(out, key=lambda g: (-g.n_rows, g.key))
