"""A quickstart-shaped run (SmolLM2 on the CPU through the local runtime) with one core kept busy
by another process carries the busy_host warning and its figures; a quiet run does not. Slow:
marked ``integration``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.integration.test_quickstart import QUICKSTART, lembench, stored

pytestmark = pytest.mark.integration

#: Above this CPU load before the quiet run, the machine is shared with someone else's work and
#: "quiet" cannot be asserted.
QUIET_PCT = 10.0


def _suite(tmp: Path, name: str) -> Path:
    suite = yaml.safe_load(QUICKSTART.read_text())
    suite.update(name=name, cycles=1)
    suite.pop("sweep", None)
    suite["experiment"]["batch_size"] = 4
    suite["experiment"]["workload"].update(num_prompts=8, output_tokens=16)
    suite["measurement"] = {"idle_baseline_s": 2, "baseline_cache_s": 0}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _run(tmp: Path, name: str) -> dict:
    results = tmp / "results"
    proc = lembench("run", str(_suite(tmp, name)), "--results-dir", str(results))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = stored(results, name)
    assert result["status"] == "ok"
    return result


def test_busy_host_is_warned(tmp_path: Path) -> None:
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = _run(tmp_path, "busy-host")
    finally:
        burner.kill()
        burner.wait()
    load = busy["host_load"]
    codes = {w["code"] for w in busy["warnings"]}
    assert "busy_host" in codes, (load, busy["warnings"])
    # The burner's CPU time is other processes' share, before the baseline and in the window.
    assert load["busy"] and load["other_cpu_pct"] >= load["threshold_pct"]
    assert load["load_before_baseline_pct"] >= load["threshold_pct"]


def test_quiet_host_is_not_warned(tmp_path: Path) -> None:
    before = psutil.cpu_percent(interval=1.0)
    if before > QUIET_PCT:
        pytest.skip(f"the machine is not quiet ({before:.0f}% CPU used by others' work)")
    quiet = _run(tmp_path, "quiet-host")
    assert "busy_host" not in {w["code"] for w in quiet["warnings"]}, quiet["host_load"]
    assert quiet["host_load"]["busy"] is False
    assert quiet["host_load"]["other_cpu_pct"] < quiet["host_load"]["threshold_pct"]
