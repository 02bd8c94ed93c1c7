"""The record of one comparison: ``<results>/_reproductions/<study>/<UTC time>-<id>.json``.

Every ``lembench reproduce`` that compares writes one, validated against
``schemas/reproduction.schema.json``, and never overwrites one (the file is linked into place,
which fails if the name exists). Suite names cannot start with '_', so the folder can never be a
suite's, and the store skips it.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lembench import __version__
from lembench.reproduce import schemas
from lembench.reproduce.compare import VERDICTS, Judgement, PointValue

RECORDS_DIR = "_reproductions"


@dataclass(frozen=True)
class ClaimResult:
    """A judged claim with everything the record and the tables show."""

    claim: dict[str, Any]
    points: list[PointValue]
    judgement: Judgement


def records_dir(results_dir: Path, study: str | None = None) -> Path:
    folder = Path(results_dir) / RECORDS_DIR
    return folder / study if study else folder


def build(
    *,
    study: Any,
    suite_name: str,
    suite_sha256: str,
    reference_sha256: str,
    dummy: bool,
    compare_only: bool,
    invocation_id: str | None,
    results: list[ClaimResult],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The record document (``study`` is a ``lembench.reproduce.reference.Study``)."""
    now = now or datetime.now(UTC)
    ref = study.reference
    citation = {
        k: ref["citation"][k]
        for k in ("authors", "title", "venue", "url", "published", "accessed", "location")
    }
    measured_hw = sorted(
        {p.measured.hardware for r in results for p in r.points if p.measured.hardware}
    )
    claims = []
    for r in results:
        c, j = r.claim, r.judgement
        entry: dict[str, Any] = {
            "id": c["id"],
            "statement": c["statement"],
            "metric": c["metric"],
            "unit": c["unit"],
            "scale": c["scale"],
            "kind": c["comparison"]["kind"],
            "tolerance": dict(c["tolerance"]),
            "verification": c["verification"]["status"],
            "verdict": j.verdict,
            "why": j.why,
            "uncertain": j.uncertain,
            "published_order": j.published_order,
            "measured_order": j.measured_order,
            "points": [
                {
                    "label": p.label,
                    "published": point["published"],
                    "published_value": p.published,
                    "verification": point["verification"],
                    "experiment_id": p.measured.experiment_id,
                    "measured": p.measured.as_record(),
                }
                for p, point in zip(r.points, c["points"], strict=True)
            ],
            "quantities": [q.as_record() for q in j.quantities],
        }
        if "range" in c["comparison"]:
            entry["range"] = list(c["comparison"]["range"])
        claims.append(entry)
    return {
        "schema_version": schemas.version(schemas.RECORD),
        "record_id": now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3),
        "study": study.id,
        "title": ref["title"],
        "citation": citation,
        "verification": dict(ref["verification"]),
        "created_at": now.isoformat(timespec="microseconds"),  # orders records of one second
        "lembench_version": __version__,
        "command": " ".join(["lembench", *sys.argv[1:]]),
        "suite": suite_name,
        "suite_sha256": suite_sha256,
        "reference_sha256": reference_sha256,
        "dummy_weights": dummy,
        "compare_only": compare_only,
        "invocation_id": invocation_id,
        "hardware": {"published": ref["hardware"]["description"], "measured": measured_hw},
        "claims": claims,
        "summary": {v: sum(r.judgement.verdict == v for r in results) for v in VERDICTS},
    }


def write(results_dir: Path, record: dict[str, Any]) -> Path:
    """Validate ``record`` and write it under its study's folder; never overwrites a file."""
    found = schemas.problem(schemas.RECORD, record)
    if found is not None:  # our own bug, not the user's input
        raise RuntimeError(f"reproduce built an invalid record: {found[0]}: {found[1]}")
    folder = records_dir(results_dir, record["study"])
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{record['record_id']}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.link(tmp, final)  # fails if the name exists: records are never overwritten
    finally:
        os.unlink(tmp)
    return final


def iter_records(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every valid record under ``results_dir`` (untrusted files: invalid ones are skipped)."""
    root = records_dir(results_dir)
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/*.json")):
        if path.name.startswith("."):
            continue
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if schemas.problem(schemas.RECORD, doc) is None:
            yield path, doc


def latest_records(results_dir: Path) -> list[dict[str, Any]]:
    """The newest record of each study with real weights and the newest with dummy weights (by
    creation time, then record id; the two answer different questions), sorted by study."""
    latest: dict[tuple[str, bool], dict[str, Any]] = {}
    for _, doc in iter_records(results_dir):
        slot = (doc["study"], doc["dummy_weights"])
        old = latest.get(slot)
        if old is None or (doc["created_at"], doc["record_id"]) > (
            old["created_at"],
            old["record_id"],
        ):
            latest[slot] = doc
    return [latest[k] for k in sorted(latest)]
