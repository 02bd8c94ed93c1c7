"""Finding studies and loading their reference files.

A study is a folder ``<studies-dir>/<study-id>/`` holding ``reference.yaml`` and ``suite.yaml``.
``load_study`` validates the reference against ``schemas/reference.schema.json`` and then what a
schema cannot say (the folder name is the id, metric names exist, pair labels name points, every
point selects exactly one experiment of the suite). Every problem is a one-line ``UserError``
naming the file and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lembench
from harness.contract.registry import suggest
from lembench.errors import UserError
from lembench.reproduce import schemas
from lembench.results.aggregate import METRICS
from lembench.suite import Suite, load_suite
from lembench.suite.extends import parse_yaml, read_file
from lembench.suite.messages import show

REFERENCE_FILE = "reference.yaml"
SUITE_FILE = "suite.yaml"

#: Metrics whose values come from the energy meters: an estimate cannot judge them.
ENERGY_PREFIXES = ("j_", "energy_")
ENERGY_METRICS = frozenset({"avg_power_w", "idle_power_w", "co2_g"})


def is_energy_metric(metric: str) -> bool:
    """Whether ``metric`` is (derived from) measured energy or power."""
    return metric.startswith(ENERGY_PREFIXES) or metric in ENERGY_METRICS


def default_studies_dir() -> Path:
    """``suites/reproductions`` of the checkout lembench runs from (the package's parent)."""
    return Path(lembench.__file__).resolve().parent.parent / "suites" / "reproductions"


def studies_dir(option: Path | None) -> Path:
    """The studies folder: ``option`` (``--studies-dir``) or the checkout's; it must exist."""
    folder = Path(option) if option is not None else default_studies_dir()
    if not folder.is_dir():
        hint = "" if option is not None else " (lembench runs from an install without suites/)"
        raise UserError(
            f"studies folder {folder} not found{hint}; pass --studies-dir "
            "<checkout>/suites/reproductions"
        )
    return folder


def study_ids(folder: Path) -> list[str]:
    """Ids of the studies under ``folder``: sub-folders holding a reference file, sorted."""
    return sorted(p.parent.name for p in folder.glob(f"*/{REFERENCE_FILE}") if p.is_file())


@dataclass(frozen=True)
class Study:
    """One study: its validated reference and where its files are."""

    id: str
    folder: Path
    reference: dict[str, Any]

    @property
    def reference_path(self) -> Path:
        return self.folder / REFERENCE_FILE

    @property
    def suite_path(self) -> Path:
        return self.folder / SUITE_FILE

    @property
    def suite_name(self) -> str:
        return f"repro-{self.id}"

    @property
    def claims(self) -> list[dict[str, Any]]:
        return self.reference["claims"]

    def _who_when(self) -> str:
        c = self.reference["citation"]
        authors = c["authors"]
        who = f"{authors[0]} et al." if len(authors) > 2 else " and ".join(authors)
        year = c["published"][:4] if c["published"][:4].isdigit() else c["published"]
        return f"{who} ({year})"

    def citation_line(self) -> str:
        """``Authors (year), title, venue`` in one line."""
        c = self.reference["citation"]
        return f"{self._who_when()}, {c['title']}, {c['venue']}"

    def short_source(self) -> str:
        """``Authors (year), host/first/path`` for tables."""
        url = self.reference["citation"]["url"].split("://", 1)[-1]
        parts = url.split("/")
        return f"{self._who_when()}, {'/'.join(parts[: 3 if parts[0] == 'github.com' else 1])}"


def find_study(folder: Path, name: str) -> Study:
    """The study ``name`` under ``folder``; an unknown name is a one-line error with the closest
    known ids."""
    ids = study_ids(folder)
    if name not in ids:
        known = ", ".join(ids) if ids else "none"
        raise UserError(
            f"unknown study {name!r}{suggest(name, ids)} (studies in {folder}: {known}; "
            "`lembench reproduce --list` shows them)"
        )
    return load_study(folder / name)


def load_study(study_folder: Path) -> Study:
    """Load and validate the reference file of the study in ``study_folder``."""
    path = study_folder / REFERENCE_FILE
    display = str(path)
    raw = read_file(path, display)
    if not raw.strip():
        raise UserError("file is empty; expected a study reference (schema_version: 1)", display)
    doc = parse_yaml(raw, display)
    found = schemas.problem(schemas.REFERENCE, doc)
    if found is not None:
        key, message = found
        raise UserError(message, file=display, key=key or None)
    _check_semantics(doc, study_folder.name, display)
    return Study(id=doc["id"], folder=study_folder, reference=doc)


def _check_semantics(doc: dict[str, Any], folder_name: str, display: str) -> None:
    """What the schema cannot check."""
    if doc["id"] != folder_name:
        raise UserError(
            f"must be the study's folder name {folder_name!r} (got {show(doc['id'])})",
            file=display,
            key="id",
        )
    seen_claims: set[str] = set()
    for i, claim in enumerate(doc["claims"]):
        where = f"claims[{i}]"
        if claim["id"] in seen_claims:
            raise UserError(f"claim id {claim['id']!r} used twice", display, f"{where}.id")
        seen_claims.add(claim["id"])
        if claim["metric"] not in METRICS:
            raise UserError(
                f"unknown metric {claim['metric']!r}{suggest(claim['metric'], list(METRICS))} "
                f"(allowed: {', '.join(METRICS)})",
                display,
                f"{where}.metric",
            )
        labels = [p["label"] for p in claim["points"]]
        for j, label in enumerate(labels):
            if labels.index(label) != j:
                raise UserError(
                    f"label {label!r} used twice", display, f"{where}.points[{j}].label"
                )
        for j, point in enumerate(claim["points"]):
            if not math.isfinite(point["published"]) or point["published"] <= 0:
                raise UserError(
                    f"must be a positive number (got {show(point['published'])}); ratios of "
                    "published values need them",
                    display,
                    f"{where}.points[{j}].published",
                )
        comparison = claim["comparison"]
        kind = comparison["kind"]
        least = {"curve": 2, "ranking": 2}.get(kind, 1)
        if len(labels) < least:
            raise UserError(
                f"a {kind} comparison needs at least {least} points (got {len(labels)})",
                display,
                f"{where}.points",
            )
        for k, pair in enumerate(comparison.get("pairs", [])):
            for side in ("numerator", "denominator"):
                if pair[side] not in labels:
                    raise UserError(
                        f"{pair[side]!r} is not a point of this claim{suggest(pair[side], labels)}"
                        f" (points: {', '.join(labels)})",
                        display,
                        f"{where}.comparison.pairs[{k}].{side}",
                    )
            if pair["numerator"] == pair["denominator"]:
                raise UserError(
                    "numerator and denominator are the same point",
                    display,
                    f"{where}.comparison.pairs[{k}]",
                )
        if "pairs" in comparison and kind not in ("ratio", "ratio_range"):
            raise UserError(
                f"pairs apply to ratio and ratio_range comparisons, not {kind}",
                display,
                f"{where}.comparison.pairs",
            )
        if "range" in comparison:
            if kind != "ratio_range":
                raise UserError(
                    f"range applies to ratio_range comparisons, not {kind}",
                    display,
                    f"{where}.comparison.range",
                )
            low, high = comparison["range"]
            if low > high:
                raise UserError(
                    f"low {low:g} is above high {high:g}", display, f"{where}.comparison.range"
                )


def _lookup(config: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _equal(wanted: Any, present: bool, value: Any) -> bool:
    if wanted is None:
        return not present or value is None
    if not present:
        return False
    if isinstance(wanted, bool) or isinstance(value, bool):
        return wanted is value
    if isinstance(wanted, int | float) and isinstance(value, int | float):
        return float(wanted) == float(value)
    return wanted == value


def match_points(study: Study, suite: Suite) -> dict[tuple[str, str], str]:
    """(claim id, point label) -> the experiment id of ``suite`` the point's ``match`` selects.

    A match that selects no experiment or several is a one-line error naming the reference file
    and the point's key, so a reference and its suite cannot drift apart unnoticed."""
    display = str(study.reference_path)
    found: dict[tuple[str, str], str] = {}
    for i, claim in enumerate(study.claims):
        for j, point in enumerate(claim["points"]):
            hits = [
                e.experiment_id
                for e in suite.experiments
                if all(_equal(v, *_lookup(e.config, k)) for k, v in point["match"].items())
            ]
            key = f"claims[{i}].points[{j}].match"
            if not hits:
                raise UserError(
                    f"selects no experiment of suite {suite.name} ({study.suite_path}); "
                    "the keys are dotted paths of an expanded experiment, e.g. batch_size or "
                    "vllm.max_num_seqs (`lembench validate` shows the grid)",
                    display,
                    key,
                )
            if len(hits) > 1:
                raise UserError(
                    f"selects {len(hits)} experiments of suite {suite.name} "
                    f"({', '.join(hits[:4])}); add keys that tell them apart",
                    display,
                    key,
                )
            found[(claim["id"], point["label"])] = hits[0]
    return found


def load_study_suite(study: Study) -> Suite:
    """The study's suite, validated; its name must be ``repro-<study-id>``."""
    suite = load_suite(study.suite_path)
    if suite.name != study.suite_name:
        raise UserError(
            f"must be {study.suite_name!r} for study {study.id!r} (got {suite.name!r})",
            file=study.suite_path,
            key="name",
        )
    return suite
