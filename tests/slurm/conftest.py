"""The slurm tier: a real Slurm cluster (CI: a single node made by .ci/slurm.sh) and real
SmolLM2 runs submitted through sbatch. Every test here is marked ``slurm``.

Without a usable cluster (no sbatch, or no partition with an idle or mixed node) the tier is
skipped with the reason, except when LEMBENCH_REQUIRE_SLURM=1 (set by CI): then a missing cluster
fails every test, so CI cannot pass without running the tier for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest


def _required() -> bool:
    return os.environ.get("LEMBENCH_REQUIRE_SLURM", "").strip().lower() not in ("", "0", "false")


def _problem() -> str | None:
    for command in ("sbatch", "sinfo", "scontrol", "scancel"):
        if shutil.which(command) is None:
            return f"no `{command}` on PATH (CI: .ci/slurm.sh installs and starts Slurm)"
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"sinfo failed: {e}"
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s in ("idle", "mix", "alloc") for s in states):
        return f"no Slurm node is up (sinfo: {(proc.stdout + proc.stderr).strip() or 'nothing'})"
    return None


_PROBLEM = pytest.StashKey[Any]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [i for i in items if "tests/slurm/" in str(i.fspath).replace("\\", "/")]
    if not ours:
        return
    problem = _problem()
    for item in ours:
        item.add_marker(pytest.mark.slurm)
        if problem and not _required():
            item.add_marker(pytest.mark.skip(reason=f"slurm tier: {problem}"))
    config.stash[_PROBLEM] = problem


@pytest.fixture(autouse=True, scope="session")
def _slurm_required(request: pytest.FixtureRequest) -> None:
    """Under LEMBENCH_REQUIRE_SLURM=1 a missing cluster is a failure, not a skip."""
    problem = request.config.stash.get(_PROBLEM, None)
    if problem and _required():
        pytest.fail(f"slurm tier required (LEMBENCH_REQUIRE_SLURM=1): {problem}", pytrace=False)
