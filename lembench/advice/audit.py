"""``lembench audit``: static findings (``audit_python``, ``audit_suite``) with the measured
evidence for each.

Evidence comes from the results folder through the same analysis ``lembench advise`` runs: the
pitfalls ``pitfalls.detect`` finds (first those of the very experiments a suite finding names,
then the same model, then other models, said so), and for quantisation and batch size the measured
lever steps, including ones that show no penalty. A finding without evidence gets the experiment
to run. Output is one ``path:line:col: CODE message`` line per finding, like a linter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from lembench.advice.audit_python import Finding, check_python
from lembench.advice.audit_suite import check_suite
from lembench.advice.compare import cite
from lembench.advice.data import Experiment, load, short_ids
from lembench.advice.levers import analyse
from lembench.advice.pitfalls import BATCH_ONE, FOUR_BIT, FOUR_BIT_KINDS, INT8, Pitfall, detect
from lembench.advice.suggest import Suggestion
from lembench.errors import UserError

CHECKS = (INT8, FOUR_BIT, BATCH_ONE)
_MAX_STEPS = 3  # lever steps shown as evidence per finding


@dataclass(frozen=True)
class Evidence:
    """One measured statement behind (or against) a finding."""

    kind: str  # measured | other_model | no_penalty
    text: str
    ids: tuple[str, ...]


@dataclass
class Entry:
    finding: Finding
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def suggestion(self) -> Suggestion | None:
        """The experiment to run, when the results hold no evidence."""
        return None if self.evidence else self.finding.suggestion


@dataclass
class AuditReport:
    path: str
    kind: str  # python | suite
    entries: list[Entry]
    results: str | None  # the results folder evidence came from
    results_note: str
    short: dict[str, str]

    @property
    def findings(self) -> list[Finding]:
        return [e.finding for e in self.entries]


def audit(path: Path, results_dir: Path) -> AuditReport:
    """Check ``path`` (a .py file or a suite .yaml/.yml) and gather evidence from
    ``results_dir``. Raises UserError for a missing, unreadable or unsupported file."""
    display = str(path)
    if not path.exists():
        raise UserError("no such file", file=display)
    if path.is_dir():
        raise UserError(
            "is a folder; audit reads one .py file or one suite .yaml/.yml", file=display
        )
    suffix = path.suffix.lower()
    if suffix == ".py":
        try:
            source = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read it ({e.__class__.__name__}: {e})", file=display) from None
        kind, findings = "python", check_python(source, display, path.parent)
    elif suffix in (".yaml", ".yml"):
        kind, findings = "suite", check_suite(path, display)
    else:
        raise UserError(
            f"unsupported file type {suffix or '(no extension)'}: audit reads Python (.py) and "
            "suite (.yaml, .yml) files",
            file=display,
        )
    experiments, results, note = _results(results_dir)
    pitfalls = detect(experiments) if experiments else []
    short = short_ids(e.experiment_id for e in experiments)
    entries = [Entry(f, _evidence(f, experiments, pitfalls, short)) for f in findings]
    return AuditReport(display, kind, entries, results, note, short)


def _results(results_dir: Path) -> tuple[list[Experiment], str | None, str]:
    if not Path(results_dir).is_dir():
        return [], None, f"no results folder {results_dir}: no measured evidence"
    try:
        loaded = load(results_dir, None, allow_mixed=True)  # evidence: mixed runs flagged, kept
    except UserError as e:
        return [], None, f"no measured evidence ({e})"
    n = len(loaded.experiments)
    return (
        loaded.experiments,
        str(results_dir),
        f"evidence from {n} experiments under {results_dir}",
    )


def _same_model(a: str | None, b: str) -> bool:
    if not a:
        return False
    a, b = a.lower(), b.lower()
    return a == b or a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


def _evidence(
    f: Finding, exps: Sequence[Experiment], pitfalls: list[Pitfall], short: dict[str, str]
) -> list[Evidence]:
    if not exps:
        return []
    detected = [p for p in pitfalls if p.code == f.code and p.status == "detected"]
    own = [p for p in detected if set(p.ids) & set(f.experiment_ids)]
    same = [p for p in detected if p not in own and any(_same_model(f.model, m) for m in p.models)]
    other = [p for p in detected if p not in own and p not in same]
    out = [Evidence("measured", p.text, p.ids) for p in own + same]
    steps = _steps(f, exps)
    if not out:  # measured steps of this model (with or without the penalty)
        out = [Evidence(kind, text, ids) for kind, text, ids in steps if kind != "other_model"]
    if not out:  # at least what another model showed
        out = [
            Evidence("other_model", f"on another model ({', '.join(p.models)}): {p.text}", p.ids)
            for p in other
        ][:1] or [Evidence(k, t, i) for k, t, i in steps if k == "other_model"][:1]
    return out


def _steps(f: Finding, exps: Sequence[Experiment]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Measured lever steps about the finding: (kind, text, ids)."""
    lever = {BATCH_ONE: "batch_size", INT8: "quantization", FOUR_BIT: "quantization"}[f.code]
    report = next(r for r in analyse(exps, latency=("e2e_p99_s",)) if r.lever == lever)
    out = []
    for s in report.steps:
        if not _about(f, s.before, s.after):
            continue
        ids = (s.before.experiment_id, s.after.experiment_id)
        mine = bool(set(ids) & set(f.experiment_ids)) or _same_model(f.model, s.before.model)
        j = s.changes.get("j_per_output_token")
        penalty = j is not None and j.after > j.before
        if not mine:
            out.append(("other_model", f"on another model ({s.before.model}): {s.describe()}", ids))
        elif f.code == BATCH_ONE or penalty:
            out.append(("measured", s.describe(), ids))
        else:
            out.append(("no_penalty", f"no penalty measured here: {s.describe()}", ids))
    out.sort(key=lambda x: x[0] != "measured")
    return out[:_MAX_STEPS]


def _about(f: Finding, before: Experiment, after: Experiment) -> bool:
    """Whether a lever step measures what the finding is about."""
    if f.code == BATCH_ONE:
        return before.batch_size == 1
    if before.quantization is not None:
        return False
    if f.code == INT8:
        return after.quantization == "bnb_int8" and after.int8_threshold in (None, 6.0)
    return after.quantization in FOUR_BIT_KINDS


def audit_json(report: AuditReport) -> dict[str, Any]:
    """The machine-readable document of ``lembench audit --json``."""
    return {
        "command": "audit",
        "path": report.path,
        "kind": report.kind,
        "checks": list(CHECKS),
        "results": report.results,
        "results_note": report.results_note,
        "clean": not report.entries,
        "findings": [
            {
                "path": report.path,
                "line": e.finding.line,
                "col": e.finding.col,
                "code": e.finding.code,
                "message": e.finding.message,
                "model": e.finding.model,
                "experiment_ids": list(e.finding.experiment_ids),
                "evidence": [
                    {
                        "kind": v.kind,
                        "text": f"{v.text} {cite(v.ids, report.short)}",
                        "ids": list(v.ids),
                    }
                    for v in e.evidence
                ],
                "suggestion": e.suggestion.as_dict() if e.suggestion else None,
            }
            for e in report.entries
        ],
    }


def print_audit(report: AuditReport) -> None:
    """Linter-style lines, each finding followed by its evidence or the experiment to run."""
    for e in report.entries:
        f = e.finding
        click.echo(f"{report.path}:{f.line}:{f.col}: {f.code} {f.message}")
        for v in e.evidence:
            click.echo(f"    measured: {v.text} {cite(v.ids, report.short)}")
        if e.suggestion is not None:
            click.echo(f"    to check it, run: {e.suggestion.text}")
            for line in e.suggestion.yaml_lines():
                click.echo(f"        {line}")
    n = len(report.entries)
    if n:
        click.echo(f"{n} finding{'s' * (n != 1)} in {report.path} ({report.results_note})")
    else:
        click.echo(f"{report.path}: no findings (checked: {', '.join(CHECKS)})")
