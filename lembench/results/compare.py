"""``lembench compare A B``: two experiments (ids or prefixes), or two suites experiment by
experiment, every metric side by side with the ratio B/A, its 95% interval and Welch's t test.

The statistics come from scipy: ``scipy.stats.ttest_ind(..., equal_var=False)`` (Welch's test,
https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.ttest_ind.html) and the Student t
quantile ``scipy.stats.t.ppf``. The ratio's interval is the delta method on log(mean B / mean A)
with Welch-Satterthwaite degrees of freedom. With fewer than two successful cycles on a side there
is no test: the comparison says so instead of printing a p-value.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lembench.errors import UserError
from lembench.results.aggregate import METRICS, run_row
from lembench.store import ResultStore, StoredRun

#: Significance level of the test (and 1 - level of the intervals).
ALPHA = 0.05
#: Metrics where more is better (all others: less is better, e.g. J/token, latency).
HIGHER_IS_BETTER = frozenset(
    {"throughput_out_tok_s", "requests_per_s", "mfu", "mbu", "pass_at_1", "tokens_out"}
)
#: Metrics the comparison leaves out: bookkeeping, not outcomes.
SKIPPED = frozenset({"tokens_in", "duration_s"})


@dataclass(frozen=True)
class Sample:
    """One side's values of one metric over its successful cycles."""

    n: int
    mean: float | None
    std: float | None
    half_width: float | None  # of the 95% t-interval of the mean

    @classmethod
    def of(cls, values: Sequence[float]) -> Sample:
        """Summary of ``values`` (sample std, Student t interval from scipy)."""
        from scipy import stats

        n = len(values)
        if n == 0:
            return cls(0, None, None, None)
        mean = math.fsum(values) / n
        if n < 2:
            return cls(n, mean, None, None)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        return cls(n, mean, std, float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * std / math.sqrt(n))


@dataclass(frozen=True)
class MetricComparison:
    """One metric of A and B: the ratio B/A with its interval and Welch's test."""

    metric: str
    a: Sample
    b: Sample
    ratio: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None
    p_value: float | None = None
    significant: bool | None = None  # None: no test (too few cycles, or no variance)
    note: str = ""

    @property
    def verdict(self) -> str:
        """Which side is better, in words, or why there is no verdict."""
        if self.note:
            return self.note
        if not self.significant:
            return "no significant difference"
        assert self.a.mean is not None and self.b.mean is not None
        b_higher = self.b.mean > self.a.mean
        better = b_higher == (self.metric in HIGHER_IS_BETTER)
        return f"B {'higher' if b_higher else 'lower'} ({'better' if better else 'worse'})"


def compare_values(metric: str, a: Sequence[float], b: Sequence[float]) -> MetricComparison:
    """Compare two samples of ``metric``: ratio of means, its 95% interval, Welch's t test."""
    from scipy import stats

    sa, sb = Sample.of(a), Sample.of(b)
    ratio = None
    if sa.mean is not None and sb.mean is not None and sa.mean != 0:
        ratio = sb.mean / sa.mean
    if sa.n < 2 or sb.n < 2:
        note = f"too few cycles for a test (n = {sa.n} vs {sb.n}; needs 2 or more each)"
        return MetricComparison(metric, sa, sb, ratio, note=note)
    assert sa.std is not None and sb.std is not None and sa.mean is not None
    assert sb.mean is not None
    if sa.std == 0 and sb.std == 0:
        note = "identical" if sa.mean == sb.mean else "no spread within either side: no test"
        return MetricComparison(metric, sa, sb, ratio, ratio, ratio, note=note)
    p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    low = high = None
    if ratio is not None and sa.mean > 0 and sb.mean > 0:
        # Delta method on log(ratio): var = s_a^2 / (n_a m_a^2) + s_b^2 / (n_b m_b^2).
        va = sa.std**2 / (sa.n * sa.mean**2)
        vb = sb.std**2 / (sb.n * sb.mean**2)
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
        t = float(stats.t.ppf(1 - ALPHA / 2, df))
        low, high = ratio * math.exp(-t * se), ratio * math.exp(t * se)
    return MetricComparison(metric, sa, sb, ratio, low, high, p, p < ALPHA)


@dataclass(frozen=True)
class Side:
    """One experiment being compared."""

    suite: str
    experiment_id: str
    description: str  # backend, model, precision, batch, workload, variant, hardware
    runs: int
    ok_runs: int


@dataclass
class Comparison:
    """Experiment A against experiment B, metric by metric (metrics with a value on both)."""

    a: Side
    b: Side
    metrics: list[MetricComparison] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``lembench compare --json``)."""
        out = {"a": asdict(self.a), "b": asdict(self.b), "metrics": []}
        for m in self.metrics:
            d = asdict(m)
            d["verdict"] = m.verdict
            out["metrics"].append(d)
        return out


def _describe(row: dict[str, Any]) -> str:
    parts = [row.get("backend"), row.get("model"), row.get("precision")]
    parts += [f"batch {row.get('batch_size')}", row.get("workload"), row.get("variant")]
    parts.append(row.get("hardware"))
    return " · ".join(str(p) for p in parts if p)


def compare_runs(a: Iterable[StoredRun], b: Iterable[StoredRun]) -> Comparison:
    """Compare the runs of one experiment (``a``) with those of another (``b``)."""
    rows_a, rows_b = [run_row(r) for r in a], [run_row(r) for r in b]
    sides = []
    for rows in (rows_a, rows_b):
        ok = [r for r in rows if r["status"] == "ok"]
        first = (ok or rows)[0]
        sides.append(
            Side(first["suite"], first["experiment_id"], _describe(first), len(rows), len(ok))
        )
    cmp = Comparison(sides[0], sides[1])
    for metric in METRICS:
        if metric in SKIPPED:
            continue
        va = [float(r[metric]) for r in rows_a if r["status"] == "ok" and _ok(r[metric])]
        vb = [float(r[metric]) for r in rows_b if r["status"] == "ok" and _ok(r[metric])]
        if va and vb:
            cmp.metrics.append(compare_values(metric, va, vb))
    return cmp


def _ok(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _by_experiment(runs: Iterable[StoredRun]) -> dict[tuple[str, str], list[StoredRun]]:
    out: dict[tuple[str, str], list[StoredRun]] = defaultdict(list)
    for r in runs:
        out[(str(r.result.get("suite")), r.experiment_id)].append(r)
    return out


def resolve(store: ResultStore, ident: str) -> tuple[str, dict[tuple[str, str], list[StoredRun]]]:
    """What ``ident`` names: ("suite", its experiments) when it is a suite folder of the store,
    else ("experiment", the one experiment whose id it is or starts, or the run id's)."""
    if (store.root / ident).is_dir() and not ident.startswith("."):
        found = _by_experiment(store.iter_runs(ident))
        if found:
            return "suite", found
    found = _by_experiment(store.find(ident))
    if not found:
        raise UserError(f"no stored suite, experiment or run matches {ident!r} under {store.root}")
    if len(found) > 1:
        ids = ", ".join(sorted(eid[:12] for _, eid in found)[:5])
        raise UserError(
            f"{ident!r} matches {len(found)} experiments ({ids}{', …' if len(found) > 5 else ''}); "
            "give a longer id prefix"
        )
    return "experiment", found


@dataclass
class CompareResult:
    """All pairs compared, and experiments of one suite that the other lacks."""

    pairs: list[Comparison]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "pairs": [p.as_dict() for p in self.pairs],
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
        }


def compare(results_dir: Path, a: str, b: str) -> CompareResult:
    """Compare ``a`` with ``b``: two experiments (ids, prefixes, or run ids), or two suites (their
    experiments paired by experiment id, the hash of the expanded config)."""
    store = ResultStore(Path(results_dir))
    if not Path(results_dir).is_dir():
        raise UserError(f"results folder {results_dir} does not exist (or is not a folder)")
    kind_a, found_a = resolve(store, a)
    kind_b, found_b = resolve(store, b)
    if kind_a != kind_b:
        raise UserError(
            f"cannot compare a {kind_a} ({a!r}) with a {kind_b} ({b!r}): give two experiments "
            "or two suites"
        )
    if kind_a == "experiment":
        ((_, runs_a),) = found_a.items()
        ((_, runs_b),) = found_b.items()
        return CompareResult([compare_runs(runs_a, runs_b)])
    ids_a = {eid: runs for (_, eid), runs in found_a.items()}
    ids_b = {eid: runs for (_, eid), runs in found_b.items()}
    pairs = [compare_runs(ids_a[e], ids_b[e]) for e in sorted(ids_a.keys() & ids_b.keys())]
    if not pairs:
        raise UserError(
            f"suites {a!r} and {b!r} have no experiment in common (same expanded config); "
            "compare two experiment ids instead"
        )
    return CompareResult(
        pairs, sorted(ids_a.keys() - ids_b.keys()), sorted(ids_b.keys() - ids_a.keys())
    )
