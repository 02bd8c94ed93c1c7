"""Cycles until converged: when an experiment has been measured often enough.

A suite may give ``cycles: {min, max, until_ci_pct}`` instead of a fixed count (pyperf repeats a
benchmark until its spread settles; MLPerf asks for enough samples for a stated confidence).
Each experiment is run cycle by cycle; after at least ``min`` cycles it stops once the 95%
Student-t interval of its ranked J/token (``lembench.results.scope``; tokens/s where no energy was
measured) has a half-width of at most ``until_ci_pct`` % of the mean, or when ``max`` cycles ran.
The state is derived from the stored runs alone (so ``--resume`` continues where a run stopped)
and is shown in every summary: ``converged``, ``max_cycles`` (stopped without reaching the
target), ``failing`` (``min`` failed runs and fewer than two successful ones: more cycles will not
help) or ``running``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

#: States of ``convergence_state``; the first three stop an experiment.
CONVERGED = "converged"
MAX_CYCLES = "max_cycles"
FAILING = "failing"
RUNNING = "running"
STOPPED = (CONVERGED, MAX_CYCLES, FAILING)

#: The metric the rule watches, and the one used where no run measured energy.
METRIC = "j_per_output_token"
FALLBACK_METRIC = "throughput_out_tok_s"


@dataclass(frozen=True)
class Policy:
    """A suite's ``cycles: {min, max, until_ci_pct}`` (defaults filled)."""

    min: int
    max: int
    until_ci_pct: float

    @classmethod
    def from_dict(cls, block: dict[str, Any] | None) -> Policy | None:
        """The policy of a ``convergence`` block (request, result or suite settings); None when
        the block is absent (a fixed cycle count)."""
        if not isinstance(block, dict):
            return None
        return cls(int(block["min"]), int(block["max"]), float(block["until_ci_pct"]))

    def to_dict(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "until_ci_pct": self.until_ci_pct}


def convergence_state(policy: Policy, n_ok: int, n_failed: int, ci_pct: float | None) -> str:
    """The state of one experiment with ``n_ok`` successful and ``n_failed`` failed cycles whose
    watched metric has an interval half-width of ``ci_pct`` % (None: not computable yet)."""
    if n_ok >= policy.min and ci_pct is not None and ci_pct <= policy.until_ci_pct:
        return CONVERGED
    if n_ok + n_failed >= policy.max:
        return MAX_CYCLES
    if n_failed >= policy.min and n_ok < 2:
        return FAILING
    return RUNNING


def _ci_pct(metric: str) -> pl.Expr:
    half = (pl.col(f"{metric}_ci95_high") - pl.col(f"{metric}_ci95_low")) / 2
    return 100.0 * half / pl.col(f"{metric}_mean").abs()


def with_convergence(summary: pl.DataFrame) -> pl.DataFrame:
    """``summary`` (aggregate.summarise, before its final column selection, with the policy
    columns ``_conv_min``, ``_conv_max``, ``_conv_ci``) plus ``convergence`` (state, null for a
    fixed cycle count), ``convergence_metric`` and ``convergence_ci_pct`` (the half-width now)."""
    use_j = pl.col(f"{METRIC}_mean").is_not_null()
    ci_pct = (pl.when(use_j).then(_ci_pct(METRIC)).otherwise(_ci_pct(FALLBACK_METRIC))).fill_nan(
        None
    )
    summary = summary.with_columns(
        ci_pct.alias("convergence_ci_pct"),
        pl.when(pl.col("_conv_ci").is_not_null())
        .then(pl.when(use_j).then(pl.lit(METRIC)).otherwise(pl.lit(FALLBACK_METRIC)))
        .alias("convergence_metric"),
    )
    states = []
    for row in summary.select(
        "_conv_min", "_conv_max", "_conv_ci", "n_ok", "n_failed", "convergence_ci_pct"
    ).iter_rows():
        low, high, target, n_ok, n_failed, pct = row
        if target is None:
            states.append(None)
            continue
        policy = Policy(int(low), int(high), float(target))
        states.append(convergence_state(policy, n_ok, n_failed, pct))
    return summary.with_columns(pl.Series("convergence", states, dtype=pl.String)).drop(
        "_conv_min", "_conv_max", "_conv_ci"
    )


def run_policy_columns(result: dict[str, Any]) -> dict[str, Any]:
    """The policy columns of one run's row: from the result's ``convergence`` block (v5)."""
    policy = Policy.from_dict(result.get("convergence"))
    if policy is None:
        return {"conv_min": None, "conv_max": None, "conv_ci": None}
    return {"conv_min": policy.min, "conv_max": policy.max, "conv_ci": policy.until_ci_pct}


def state_of_rows(rows: list[dict[str, Any]], policy: Policy) -> tuple[str, float | None]:
    """(state, interval half-width %) of one experiment from its runs' rows
    (``aggregate.run_row``): the same rule as ``with_convergence``, for the run loop."""
    from lembench.results.stats import ci_half_width_pct

    ok = [r for r in rows if r["status"] == "ok"]
    values = [r[METRIC] for r in ok if r[METRIC] is not None]
    if not values:
        values = [r[FALLBACK_METRIC] for r in ok if r[FALLBACK_METRIC] is not None]
    pct = ci_half_width_pct(values)
    return convergence_state(policy, len(ok), len(rows) - len(ok), pct), pct


def describe(state: str | None, pct: float | None, policy: Policy | None, n: int) -> str:
    """One phrase for a table or a progress line, e.g. ``converged after 4 cycles (±3.1% <=
    5%)``."""
    if state is None or policy is None:
        return ""
    ci = "" if pct is None else f"±{pct:.2g}%"
    if state == CONVERGED:
        return f"converged after {n} cycles ({ci} <= {policy.until_ci_pct:g}%)"
    if state == MAX_CYCLES:
        target = f"{ci or 'no interval'} > {policy.until_ci_pct:g}%"
        return f"not converged: stopped at max {policy.max} cycles ({target})"
    if state == FAILING:
        return f"stopped: {n} cycles, too many failed runs"
    return f"running ({n} of {policy.min}-{policy.max} cycles{', ' + ci if ci else ''})"
