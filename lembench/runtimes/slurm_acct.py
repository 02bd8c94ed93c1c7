"""What Slurm says about the tasks of lembench's job arrays: state, exit code, reason, node.

Asked of ``sacct`` first (the accounting database keeps finished jobs for good), and of
``scontrol show job -o`` where accounting storage is disabled (sacct then says "Slurm accounting
storage is disabled"; slurmctld keeps finished jobs for ``MinJobAge`` seconds). Both are parsed
from their documented machine-readable forms:

- ``sacct --jobs=ID,... --array --parsable2 --noheader --allocations
  --format=JobID,State,ExitCode,Reason,NodeList,Partition`` (https://slurm.schedmd.com/sacct.html):
  ``|``-separated; JobID ``<array job>_<task>``, a not-yet-split pending range as
  ``<array job>_[0-9%2]``; State like ``CANCELLED by 0``; ExitCode ``<code>:<signal>``.
- ``scontrol show job -o ID`` (https://slurm.schedmd.com/scontrol.html): one line per task of
  ``Key=Value`` pairs (ArrayJobId, ArrayTaskId, JobState, Reason, ExitCode, NodeList, Partition);
  ArrayTaskId of the still-pending rest is a range such as ``2-3%1``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

#: States after which a task never runs again (https://slurm.schedmd.com/job_state_codes.html).
TERMINAL = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
    }
)
PENDING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
#: lembench's failure reason (result.schema.json error.reason) for a task Slurm ended.
REASON_BY_STATE = {
    "OUT_OF_MEMORY": "oom",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "CANCELLED": "crashed",
    "NODE_FAIL": "crashed",
    "BOOT_FAIL": "crashed",
    "PREEMPTED": "crashed",
    "FAILED": "crashed",
    "REVOKED": "crashed",
    "COMPLETED": "crashed",  # completed, yet a result is missing: the task itself broke
}
QUERY_TIMEOUT_S = 60


class SlurmQueryError(RuntimeError):
    """Neither sacct nor scontrol answered."""


@dataclass(frozen=True)
class TaskState:
    """One array task as Slurm reports it."""

    array_job_id: str
    task_id: int
    state: str  # the base state, e.g. CANCELLED (sacct's "CANCELLED by 0" -> CANCELLED)
    exit_code: str  # "<code>:<signal>" as Slurm prints it
    reason: str  # Slurm's Reason field ("None" when it gives none)
    node: str | None
    partition: str | None
    source: str  # "sacct" or "scontrol"

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def pending(self) -> bool:
        return self.state in PENDING

    def describe(self) -> str:
        """One line for a failure record: what Slurm said, all of it."""
        parts = [f"Slurm {self.source}: State={self.state}", f"ExitCode={self.exit_code}"]
        if self.reason and self.reason != "None":
            parts.append(f"Reason={self.reason}")
        if self.node:
            parts.append(f"NodeList={self.node}")
        return " ".join(parts)


def _expand(ids: str) -> list[int]:
    """Task indices of ``3``, ``[0-9%2]``, ``2-3%1`` or ``0,4-5``."""
    ids = ids.strip("[]").split("%")[0]
    out: list[int] = []
    for part in ids.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def parse_sacct(text: str) -> list[TaskState]:
    """Tasks in ``sacct --parsable2 --noheader --format=JobID,State,ExitCode,Reason,NodeList,
    Partition`` output (job steps such as ``12_3.batch`` are skipped)."""
    tasks = []
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 6 or "." in fields[0] or "_" not in fields[0]:
            continue
        job, _, ids = fields[0].partition("_")
        state = fields[1].split()[0] if fields[1] else "UNKNOWN"
        node = fields[4] if fields[4] not in ("", "None assigned") else None
        for task_id in _expand(ids):
            tasks.append(
                TaskState(
                    job, task_id, state, fields[2], fields[3], node, fields[5] or None, "sacct"
                )
            )
    return tasks


_PAIR = re.compile(r"(\S+?)=(\S*)")


def parse_scontrol(text: str) -> list[TaskState]:
    """Tasks in ``scontrol show job -o`` output (one job or array task per line)."""
    tasks = []
    for line in text.splitlines():
        pairs = dict(_PAIR.findall(line))
        if "ArrayJobId" not in pairs or "ArrayTaskId" not in pairs:
            continue
        node = pairs.get("NodeList") or None
        for task_id in _expand(pairs["ArrayTaskId"]):
            tasks.append(
                TaskState(
                    pairs["ArrayJobId"],
                    task_id,
                    pairs.get("JobState", "UNKNOWN"),
                    pairs.get("ExitCode", ""),
                    pairs.get("Reason", ""),
                    node if node != "(null)" else None,
                    pairs.get("Partition") or None,
                    "scontrol",
                )
            )
    return tasks


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)


def query_tasks(job_ids: Iterable[str]) -> dict[tuple[str, int], TaskState]:
    """(array job id, task index) -> state of every task of ``job_ids``: sacct where accounting
    is on, else scontrol. A job neither knows (scontrol forgets after MinJobAge) is absent."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    errors = []
    try:
        proc = _run(
            [
                "sacct",
                f"--jobs={','.join(ids)}",
                "--array",
                "--allocations",
                "--parsable2",
                "--noheader",
                "--format=JobID,State,ExitCode,Reason,NodeList,Partition",
            ]
        )
        if proc.returncode == 0 and "accounting storage is disabled" not in proc.stderr:
            return {(t.array_job_id, t.task_id): t for t in parse_sacct(proc.stdout)}
        errors.append(f"sacct: {(proc.stderr or proc.stdout).strip()}")
    except (OSError, subprocess.SubprocessError) as e:
        errors.append(f"sacct: {e}")
    found: dict[tuple[str, int], TaskState] = {}
    answered = False
    for job in ids:
        try:
            proc = _run(["scontrol", "show", "job", "-o", job])
        except (OSError, subprocess.SubprocessError) as e:
            errors.append(f"scontrol: {e}")
            continue
        if proc.returncode == 0:
            answered = True
            found.update({(t.array_job_id, t.task_id): t for t in parse_scontrol(proc.stdout)})
        elif "Invalid job id" in proc.stderr:
            answered = True  # forgotten (older than MinJobAge): no state to report
        else:
            errors.append(f"scontrol: {proc.stderr.strip()}")
    if not answered:
        raise SlurmQueryError("; ".join(errors))
    return found
