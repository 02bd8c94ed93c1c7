"""A fake of Slurm's client commands for unit tests: installed (by ``install``) as ``sbatch``,
``scontrol``, ``sacct`` and ``squeue`` in a folder put first on PATH. It schedules nothing; tests
set each array task's state in a JSON file (FAKE_SLURM_STATE) and read back every call made.

The output forms mirror Slurm 22.05 as seen on a real cluster (see .ci/slurm.sh):
- ``sbatch --parsable SCRIPT`` prints ``<job id>``; ``--test-only`` prints
  ``sbatch: Job N to start at ...`` on stderr; a refusal prints ``sbatch: error: <message>`` on
  stderr and exits 1. ``--array`` on the command line wins over the script's ``#SBATCH --array``.
- ``scontrol show config`` has a ``MaxArraySize = N`` line; ``scontrol show job -o ID`` prints
  one ``Key=Value`` line per array task, or ``slurm_load_jobs error: Invalid job id specified``
  (exit 1).
- ``sacct`` without accounting storage: ``Slurm accounting storage is disabled`` (exit 1); with it,
  ``--parsable2 --noheader`` lines of JobID|State|ExitCode|Reason|NodeList|Partition.
- ``squeue --format=%A``: the job ids in the state's ``running_jobs``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

COMMANDS = ("sbatch", "scontrol", "sacct", "squeue")


def install(bin_dir: Path, state_file: Path, state: dict | None = None) -> None:
    """Write the four commands into ``bin_dir`` (prepend it to PATH yourself)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    base = {
        "next_job": 100,
        "calls": [],
        "refuse": None,
        "jobs": {},
        "accounting": False,
        "max_array_size": 1001,
        "running_jobs": [],
    }
    state_file.write_text(json.dumps({**base, **(state or {})}))
    for name in COMMANDS:
        path = bin_dir / name
        path.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            f"import fake_slurm\nsys.exit(fake_slurm.main({name!r}, sys.argv[1:]))\n"
        )
        path.chmod(0o755)


def _load() -> tuple[Path, dict]:
    path = Path(os.environ["FAKE_SLURM_STATE"])
    return path, json.loads(path.read_text())


def _indices(spec: str) -> list[int]:
    spec = spec.split("%")[0]
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _sbatch(args: list[str], state: dict) -> int:
    if state["refuse"]:
        print(f"sbatch: error: {state['refuse']}", file=sys.stderr)
        return 1
    script = Path(args[-1]).read_text()
    if "--test-only" in args:
        print("sbatch: Job 1 to start at 2026-12-05T12:00:00 using 1 processors", file=sys.stderr)
        return 0
    array = next((a.split("=", 1)[1] for a in args if a.startswith("--array=")), None)
    if array is None:
        match = re.search(r"^#SBATCH --array=(\S+)", script, re.M)
        array = match.group(1) if match else "0"
    job = str(state["next_job"])
    state["next_job"] += 1
    state["jobs"][job] = {
        str(i): {"state": "PENDING", "exit_code": "0:0", "reason": "None"} for i in _indices(array)
    }
    print(job)
    return 0


def _scontrol(args: list[str], state: dict) -> int:
    if args[:2] == ["show", "config"]:
        print(f"MaxArraySize            = {state['max_array_size']}")
        return 0
    job = args[-1]
    if job not in state["jobs"]:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    for task, t in state["jobs"][job].items():
        node = "vm" if t["state"] != "PENDING" else ""
        print(
            f"JobId={int(job) + int(task)} ArrayJobId={job} ArrayTaskId={task} JobName=x "
            f"UserId=root(0) JobState={t['state']} Reason={t['reason']} Dependency=(null) "
            f"ExitCode={t['exit_code']} Partition=debug NodeList={node} BatchHost={node}"
        )
    return 0


def _sacct(args: list[str], state: dict) -> int:
    if not state["accounting"]:
        print("Slurm accounting storage is disabled", file=sys.stderr)
        return 1
    jobs = next(a.split("=", 1)[1] for a in args if a.startswith("--jobs=")).split(",")
    for job in jobs:
        for task, t in state["jobs"].get(job, {}).items():
            print(f"{job}_{task}|{t['state']}|{t['exit_code']}|{t['reason']}|vm|debug")
            print(f"{job}_{task}.batch|{t['state']}|{t['exit_code']}||vm|")
    return 0


def main(name: str, args: list[str]) -> int:
    """Run fake command ``name``; every call is recorded in the state file."""
    path, state = _load()
    state["calls"].append([name, *args])
    handler = {"sbatch": _sbatch, "scontrol": _scontrol, "sacct": _sacct}.get(name)
    if handler is None:  # squeue
        print("\n".join(state["running_jobs"]))
        rc = 0
    else:
        rc = handler(args, state)
    path.write_text(json.dumps(state))
    return rc
