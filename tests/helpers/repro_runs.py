"""Stored runs for ``lembench reproduce`` tests: schema-valid results (lembench.report.synthetic)
written through the real ResultStore, with the compared metrics set to chosen values."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from lembench.report.synthetic import result
from lembench.store import ResultStore

#: A small study: its suite (pytorch, a bundled architecture, batch 1/2/4) and a reference with
#: one claim of every comparison kind. Tests copy and edit it.
SUITE: dict[str, Any] = {
    "schema_version": 3,
    "name": "repro-toy",
    "cycles": 3,
    "measurement": {"meters": ["nvml"]},
    "experiment": {
        "backend": "pytorch",
        "model": {"hf": "meta-llama/Llama-3.2-1B"},
        "precision": "bf16",
        "device": "cuda",
        "warmup": {"runs": 1},
        "workload": {
            "kind": "synthetic",
            "num_prompts": 4,
            "input_tokens": 16,
            "output_tokens": 16,
            "exact_output": True,
            "seed": 0,
        },
    },
    "sweep": {"batch_size": [1, 2, 4]},
}

TOLERANCE = {"relative": 0.2, "why": "test tolerance"}


def _points(values: dict[int, float]) -> list[dict[str, Any]]:
    return [
        {
            "label": f"b{b}",
            "match": {"batch_size": b},
            "published": v,
            "verification": "verified",
        }
        for b, v in values.items()
    ]


def claim(cid: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A claim over batch sizes 1, 2, 4 (energy falling, published 4.0 / 2.0 / 1.0 J/token)."""
    doc: dict[str, Any] = {
        "id": cid,
        "statement": f"{cid} as published",
        "metric": "j_per_output_token",
        "unit": "J per output token",
        "scale": 1,
        "points": _points({1: 4.0, 2: 2.0, 4: 1.0}),
        "comparison": {"kind": kind},
        "tolerance": dict(TOLERANCE),
        "dummy_weights": "comparable",
        "verification": {"status": "verified", "note": "test"},
    }
    doc.update(extra)
    return doc


REFERENCE: dict[str, Any] = {
    "schema_version": 1,
    "id": "toy",
    "title": "A toy study",
    "citation": {
        "authors": ["A. Author", "B. Author"],
        "title": "Toy energy figures",
        "venue": "Test venue",
        "url": "https://example.org/toy",
        "published": "2025-01-01",
        "accessed": "2026-11-21",
        "location": "Table 1",
    },
    "hardware": {"description": "1x NVIDIA H100", "match": ["H100"]},
    "software": {"engine": "1.0"},
    "protocol_notes": ["made up for tests"],
    "verification": {"status": "verified", "note": "test data", "unverified": []},
    "claims": [
        claim("energy-curve", "curve"),
        claim(
            "halving",
            "ratio",
            comparison={"kind": "ratio", "pairs": [{"numerator": "b2", "denominator": "b1"}]},
        ),
        claim(
            "quarter-range",
            "ratio_range",
            comparison={
                "kind": "ratio_range",
                "pairs": [{"numerator": "b4", "denominator": "b1"}],
                "range": [0.2, 0.3],
            },
        ),
        claim("order", "ranking"),
        claim("absolute-h100", "absolute"),
    ],
}


def write_study(studies: Path, reference: dict | None = None, suite: dict | None = None) -> Path:
    """Write the toy study (or the given documents) under ``studies/toy``; returns its folder."""
    folder = studies / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reference.yaml").write_text(
        yaml.safe_dump(copy.deepcopy(reference or REFERENCE), sort_keys=False), "utf-8"
    )
    (folder / "suite.yaml").write_text(
        yaml.safe_dump(copy.deepcopy(suite or SUITE), sort_keys=False), "utf-8"
    )
    return folder


def store_runs(
    results: Path,
    suite_name: str,
    config: dict[str, Any],
    values: list[float],
    *,
    metric: str = "j_per_output_token",
    hardware: str | None = "NVIDIA H100 80GB HBM3",
    estimate: bool = False,
    failed: bool = False,
    hour: int = 12,
) -> None:
    """One stored run per value (cycles 1..n) of the experiment ``config`` (an expanded config),
    with ``metric`` set to that value; ``hour`` (UTC, 2026-11-21) tells invocations apart."""
    store = ResultStore(results)
    for cycle, value in enumerate(values, start=1):
        doc, _ = result(
            copy.deepcopy(config),
            suite=suite_name,
            cycle=cycle,
            cycles=len(values),
            hardware=hardware,
            estimate=estimate,
            status="failed" if failed else "ok",
            timeline=False,
        )
        doc["run_id"] = doc["run_id"].replace("T120000Z", f"T{hour:02d}0000Z")
        doc["invocation_id"] = doc["invocation_id"].replace("T120000Z", f"T{hour:02d}0000Z")
        doc["started_at"] = f"2026-11-21T{hour:02d}:{cycle:02d}:00+00:00"
        doc["ended_at"] = f"2026-11-21T{hour:02d}:{cycle:02d}:30+00:00"
        if failed:
            doc["error"] = {
                "reason": "backend_unavailable",
                "message": "bnb_int8 needs CUDA and bitsandbytes",
                "exit_code": 71,
            }
        else:
            doc["metrics"][metric] = value
        store.store(json.loads(json.dumps(doc)))
