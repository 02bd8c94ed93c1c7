"""SYNTHETIC HumanEval results for report and CLI tests: ``lembench.report.synthetic`` runs whose
workload is made HumanEval and which carry a quality block built by the harness's own
``harness.window.scoring.quality_block`` (made-up outcomes, labelled synthetic like the rest)."""

from __future__ import annotations

import copy
from typing import Any

from harness.window.scoring import TASK_TIMEOUT_S, quality_block, quality_metrics
from lembench.report.synthetic import config, result
from lembench.suite.expand import experiment_id


def humaneval_run(
    model: str,
    passed: list[bool],
    *,
    backend: str = "vllm",
    precision: str = "bf16",
    batch_size: int = 4,
    cycle: int = 1,
    cycles: int = 3,
    suite: str = "synthetic-humaneval",
    estimate: bool = False,
    scored: bool = True,
) -> dict[str, Any]:
    """One synthetic run of a HumanEval experiment with one task per entry of ``passed``
    (``scored=False``: the scorer failed, as a quality block with status error records)."""
    cfg = config(model, backend, precision, batch_size, output_tokens=64)
    doc, _ = result(
        cfg,
        suite=suite,
        cycle=cycle,
        cycles=cycles,
        hardware=None if estimate else "NVIDIA H100 80GB HBM3",
        estimate=estimate,
        timeline=False,
    )
    he = copy.deepcopy(cfg)
    he["workload"] = {
        "kind": "humaneval",
        "num_prompts": len(passed),
        "output_tokens": 64,
        "exact_output": False,
    }
    eid = experiment_id(he)
    doc.update(config=he, experiment_id=eid, run_id=f"20261121T120000Z-{eid[:6]}-c{cycle}")
    items = [{"task_id": f"HumanEval/{i}", "tokens_out": 40 + i} for i in range(len(passed))]
    outcomes = [
        {"task_id": t["task_id"], "passed": ok, "result": "passed" if ok else "failed: "}
        for t, ok in zip(items, passed, strict=True)
    ]
    q = quality_block(
        items,
        outcomes if scored else None,
        timeout_s=TASK_TIMEOUT_S,
        workers=2,
        version="1.0.3",
        error=None if scored else "scorer timed out after 40 s (synthetic)",
    )
    doc["quality"] = q
    doc["metrics"].update(quality_metrics(q, doc["metrics"]))
    return doc
