"""benchmarks/gpu_validation.py --dry-run end to end on the CPU with the fake NVML: every step runs,
the meter checks read real stored results (of the fake GPU), and the archive holds them."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_dry_run_walks_every_step(tmp_path: Path) -> None:
    out = tmp_path / "gv"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_validation.py"),
            "--dry-run",
            "--budget-s",
            "1500",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    summary = json.loads((out / "validation.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == [
        "gpu-tests",
        "meter-validation",
        "overhead",
        "reference-sweep",
        "reproduce",
    ]
    assert summary["dry_run"] and "fake" in summary["note"]
    meters = steps["meter-validation"]
    assert meters["status"] == "ok", (meters, proc.stdout[-3000:])
    # The fake GPU draws a steady 150 W: its counter and integrated power agree, its idle baseline
    # repeats, and the phases close.
    assert meters["figures"]["checks"]["counter_vs_power"].startswith("met")
    assert meters["figures"]["checks"]["baseline_repeat"].startswith("met")
    assert meters["figures"]["checks"]["closure"].startswith("met")
    assert steps["overhead"]["figures"]["batch_1"]["harness_bare_ratio"] > 0
    sweep = steps["reference-sweep"]["figures"]
    assert sweep["runs"] == sweep["ok"] > 0
    assert set(steps["reproduce"]["figures"]) == {
        "ecocompute-batch-sweep",
        "ecocompute-int8-paradox",
        "ecocompute-nf4",
    }
    with tarfile.open(out.with_name("gv.tar.gz")) as tar:
        names = tar.getnames()
    assert "gv/validation.json" in names and "gv/environment.json" in names
    assert any(n.endswith("result.json") for n in names)
    assert not any("/fake-nvml" in n for n in names)
    assert proc.returncode == 0, proc.stdout[-3000:]
