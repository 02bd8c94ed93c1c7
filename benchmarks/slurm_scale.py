"""The slurm runtime at scale, as ratios to its targets measured in one run:

- plan + submission of a 10,000-experiment suite (10,000 load groups, so 10,000 array tasks):
  load, plan, write the requests and scripts, submit; goal under 10 s and one sbatch call per
  array (chunked at MaxArraySize), never one per experiment. On a real cluster (sbatch on PATH)
  the arrays are submitted held (``--hold``) and cancelled right after; without one, against
  the unit tests' fake of Slurm's commands.
- ingest of 10,000 stored results from the shared folder (read + validate each): goal under 10 s.

    .venv/bin/python benchmarks/slurm_scale.py [--experiments 10000]

Prints one JSON object: seconds, sbatch calls and the ratio seconds / budget (< 1 is within it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_S = 10.0

SUITE = """schema_version: 4
name: slurm-scale
measurement:
  idle_baseline_s: 0
experiment:
  backend: pytorch
  model: smollm2-135m
  device: cpu
sweep:
  pytorch.threads: {threads}
"""


def _fake_slurm(folder: Path) -> None:
    from tests.fakes import fake_slurm

    fake_slurm.install(folder / "bin", folder / "state.json")
    os.environ["PATH"] = f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}"
    os.environ["FAKE_SLURM_STATE"] = str(folder / "state.json")


def bench_submit(folder: Path, n: int, fake: bool = False) -> dict[str, object]:
    from lembench.execute import controller_provenance, new_invocation_id
    from lembench.plan import plan
    from lembench.runtimes.slurm import max_array_size, prepare, submit
    from lembench.runtimes.slurm_script import SlurmOptions
    from lembench.store import ResultStore
    from lembench.suite import load_suite

    folder.mkdir(parents=True)
    real = shutil.which("sbatch") is not None and not fake
    if not real:
        _fake_slurm(folder)
    path = folder / "suite.yaml"
    path.write_text(SUITE.format(threads=json.dumps(list(range(1, n + 1)))))
    calls = []
    start = time.perf_counter()
    suite = load_suite(path)
    t_load = time.perf_counter() - start
    launches = plan(suite)
    options = SlurmOptions(extra=("--hold",) if real else ())
    prepared = prepare(
        suite,
        launches,
        ResultStore(folder / "results"),
        new_invocation_id(),
        options,
        controller_provenance(suite, "slurm"),
        max_array_size(),
    )
    t_prepare = time.perf_counter() - start
    job_ids = submit(prepared)
    total = time.perf_counter() - start
    if real:
        subprocess.run(["scancel", *job_ids], check=False, timeout=60)
        calls = ["--test-only", *job_ids]
    else:
        state = json.loads((folder / "state.json").read_text())
        calls = [c for c in state["calls"] if c[0] == "sbatch"]
    return {
        "slurm": "real" if real else "fake",
        "experiments": len(suite.experiments),
        "array_tasks": len(launches),
        "arrays": len(job_ids),
        "sbatch_calls": len(calls),
        "load_s": round(t_load, 2),
        "prepare_s": round(t_prepare - t_load, 2),
        "submit_s": round(total - t_prepare, 2),
        "total_s": round(total, 2),
        "ratio_to_budget": round(total / BUDGET_S, 3),
    }


def bench_ingest(folder: Path, n: int) -> dict[str, object]:
    from harness.contract.io import write_json_atomic
    from lembench.runtimes.slurm import ingest
    from lembench.store import ResultStore
    from tests.unit.conftest import make_result

    root = folder / "store"
    inv = root / ".slurm" / "unit" / "inv"
    inv.mkdir(parents=True)
    # One run stored by the real store (validated, stamped, as a task stores it); the other
    # runs are copies of it under their own ids (storing 10,000 would validate each once more).
    first = ResultStore(root).store(make_result())
    base = json.loads((first / "result.json").read_text())
    launches = [{"group_id": "g", "cycle": 1, "runs": [[base["experiment_id"], base["run_id"]]]}]
    for i in range(1, n):
        eid, rid = f"{i:012x}", base["run_id"]
        run = root / "unit" / eid / rid
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps({**base, "experiment_id": eid}))
        launches.append({"group_id": eid, "cycle": 1, "runs": [[eid, rid]]})
    manifest = {"suite": "unit", "invocation_id": "inv", "results_dir": str(root)}
    write_json_atomic(inv / "manifest.json", {**manifest, "launches": launches})
    start = time.perf_counter()
    runs, problems = ingest(inv)
    seconds = time.perf_counter() - start
    assert len(runs) == n and not problems, problems[:3]
    return {
        "results": n,
        "ingest_s": round(seconds, 2),
        "ratio_to_budget": round(seconds / BUDGET_S, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument(
        "--fake",
        action="store_true",
        help="Submit to the fake of Slurm's commands even when sbatch is on PATH.",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = {
            "submit": bench_submit(folder / "submit", args.experiments, args.fake),
            "ingest": bench_ingest(folder / "ingest", args.experiments),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
