"""The ``slurm`` runtime: a suite invocation as job arrays on a real Slurm cluster.

One invocation folder on the shared filesystem, ``<results>/.slurm/<suite>/<invocation id>/``:
``manifest.json`` (launches, their runs, the submitted arrays), one sbatch script per array
(``array-<offset>.sbatch``) and ``tasks/<n>/`` per launch (the io folder: request.json, the
harness's log and results, Slurm's output, and ``done.json`` once the task stored its runs).

Submission: ``sbatch --test-only`` first (a refused partition, account, QOS, GRES or time is one
line naming the ``slurm.`` key, exit 2, nothing submitted), then one ``sbatch --parsable`` per
array: launches with the same GPU count, chunked at the cluster's MaxArraySize.

Following (``lembench run`` without ``--no-wait``, and ``lembench status``) polls Slurm for the
array tasks (lembench.runtimes.slurm_acct). A task that ended without ``done.json`` (cancelled,
timed out, out of memory, node failure, preempted) gets a failure record per missing run, with
Slurm's State, ExitCode and Reason in ``provenance.slurm`` and the message. With ``--requeue`` a
preempted task is resubmitted once (``sbatch --array=<its indices>`` of its script) instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contract.io import now_iso, write_json_atomic
from harness.contract.results import failed_result, validation_problem
from lembench.errors import UserError
from lembench.plan import Launch
from lembench.runtimes.slurm_acct import REASON_BY_STATE, TaskState, query_tasks
from lembench.runtimes.slurm_script import (
    DEFAULT_MAX_ARRAY_SIZE,
    RenderedScript,
    SlurmOptions,
    chunk_launches,
    gpus_for_launch,
    render_script,
)
from lembench.runtimes.slurm_task import (
    DONE_FILE,
    MANIFEST,
    TASK_FILE,
    TASKS_DIR,
    label_shared_node,
)
from lembench.store import RESULT_FILE, ResultStore, StoredRun, StoreError
from lembench.suite import Suite

SLURM_DIR = ".slurm"
SBATCH_TIMEOUT_S = 120
#: Environment the task needs even when a script is submitted by hand from another shell.
CARRIED_ENV = ("PYTHONPATH", "DOCKER_HOST", "CONTAINERS_CONF", "LEMBENCH_CACHE_DIR")
#: sbatch's refusal -> the slurm key the user set (messages of Slurm 22.05's sbatch).
KEY_BY_MESSAGE = (
    (re.compile(r"partition", re.I), "slurm.partition"),
    (re.compile(r"account", re.I), "slurm.account"),
    (re.compile(r"qos", re.I), "slurm.qos"),
    (re.compile(r"gres|generic resource|gpu", re.I), "slurm.gpus"),
    (re.compile(r"feature|constraint", re.I), "slurm.constraint"),
    (re.compile(r"time limit", re.I), "slurm.time"),
    (re.compile(r"memory", re.I), "slurm.mem"),
    (re.compile(r"array", re.I), "slurm.throttle"),
)


@dataclass
class Prepared:
    """An invocation written to the shared folder, not submitted yet."""

    invocation_id: str
    path: Path
    scripts: list[RenderedScript]
    manifest: dict[str, Any]


def invocation_path(store: ResultStore, suite_name: str, invocation_id: str) -> Path:
    """Where an invocation's manifest, scripts and io folders live."""
    return store.root / SLURM_DIR / suite_name / invocation_id


def _sbatch() -> str:
    path = shutil.which("sbatch")
    if path is None:
        raise UserError("no `sbatch` on PATH; install Slurm's client commands", key="runtime slurm")
    return path


def max_array_size() -> int:
    """The cluster's MaxArraySize (``scontrol show config``), Slurm's default when unknown."""
    try:
        proc = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
        )
        match = re.search(r"^MaxArraySize\s*=\s*(\d+)", proc.stdout, re.M)
        if match:
            return int(match.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    return DEFAULT_MAX_ARRAY_SIZE


def prepare(
    suite: Suite,
    launches: list[Launch],
    store: ResultStore,
    invocation_id: str,
    options: SlurmOptions,
    controller: dict[str, Any],
    array_size: int = DEFAULT_MAX_ARRAY_SIZE,
) -> Prepared:
    """Write the invocation folder: a request per launch, the manifest and the sbatch scripts."""
    from lembench.execute import build_request

    if options.inner == "pyxis" and not options.container_image:
        raise UserError("inner runtime pyxis needs slurm.container_image", key="slurm.inner")
    path = invocation_path(store, suite.name, invocation_id)
    (path / TASKS_DIR).mkdir(parents=True)
    controller = {**controller, "runtime": f"slurm+{options.inner}"}
    entries = []
    for n, launch in enumerate(launches):
        io_dir = path / TASKS_DIR / str(n)
        io_dir.mkdir()
        request = build_request(suite, launch, invocation_id, controller, validate=n == 0)
        (io_dir / "request.json").write_text(json.dumps(request), "utf-8")
        entries.append(
            {
                "group_id": launch.group_id,
                "cycle": launch.cycle,
                "runs": [[e["experiment_id"], e["run_id"]] for e in request["experiments"]],
            }
        )
    gpus = [gpus_for_launch((e.config for e in launch.experiments), options) for launch in launches]
    python = options.python or sys.executable
    env = {name: os.environ[name] for name in CARRIED_ENV if os.environ.get(name)}
    scripts = [
        render_script(chunk, options, path, suite.name, python, env)
        for chunk in chunk_launches(gpus, array_size)
    ]
    for script in scripts:
        (path / script.name).write_text(script.text, "utf-8")
    manifest = {
        "suite": suite.name,
        "invocation_id": invocation_id,
        "results_dir": str(store.root),
        "created_at": now_iso(),
        "settings": {k: suite.settings[k] for k in ("timeout_s", "image", "gpus")},
        "options": options.as_dict(),
        "launches": entries,
        "arrays": [
            {
                "offset": s.chunk.offset,
                "size": s.chunk.size,
                "gpus": s.chunk.gpus,
                "script": s.name,
                "sbatch_sha256": s.sha256,
                "job_id": None,
            }
            for s in scripts
        ],
        "requeued": {},
    }
    write_json_atomic(path / MANIFEST, manifest)
    return Prepared(invocation_id, path, scripts, manifest)


def _refusal(proc: subprocess.CompletedProcess[str]) -> UserError:
    said = " ".join((proc.stderr or proc.stdout or "").replace("sbatch: error:", "").split())
    said = said or f"exit {proc.returncode}"
    key = next((k for pattern, k in KEY_BY_MESSAGE if pattern.search(said)), "slurm")
    return UserError(f"sbatch refused the job: {said}", key=key)


def submit(prepared: Prepared) -> list[str]:
    """Submit every array of ``prepared`` (one sbatch call each); returns the job ids. Checks
    each distinct GPU count with ``sbatch --test-only`` first, so a refusal submits nothing (the
    invocation folder is removed and UserError raised)."""
    sbatch = _sbatch()
    try:
        tested: set[int] = set()
        for script in prepared.scripts:
            if script.chunk.gpus in tested:
                continue
            tested.add(script.chunk.gpus)
            proc = _call([sbatch, "--test-only", str(prepared.path / script.name)])
            if proc.returncode != 0:
                raise _refusal(proc)
    except BaseException:
        shutil.rmtree(prepared.path, ignore_errors=True)
        raise
    job_ids = []
    for script, entry in zip(prepared.scripts, prepared.manifest["arrays"], strict=True):
        try:
            proc = _call([sbatch, "--parsable", str(prepared.path / script.name)])
            if proc.returncode != 0:  # accepted by --test-only, refused now
                raise _refusal(proc)
        except UserError as e:
            if not job_ids:
                shutil.rmtree(prepared.path, ignore_errors=True)
                raise
            # Some arrays run already: say which, so they can be followed or cancelled.
            raise UserError(
                f"{e} (arrays {' '.join(job_ids)} were submitted before; `lembench status` "
                "follows them, scancel stops them)"
            ) from None
        entry["job_id"] = proc.stdout.strip().split(";")[0]
        job_ids.append(entry["job_id"])
        write_json_atomic(prepared.path / MANIFEST, prepared.manifest)
    return job_ids


def _call(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=SBATCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(
            f"sbatch did not answer within {SBATCH_TIMEOUT_S} s", key="runtime slurm"
        ) from None


@dataclass
class LaunchState:
    """Where one launch of an invocation stands."""

    index: int
    status: str  # pending, running, done, failed
    slurm: TaskState | None = None
    failed_runs: int = 0


@dataclass
class InvocationState:
    """Where one invocation stands (``lembench status``, the follow loop)."""

    suite: str
    invocation_id: str
    path: Path
    launches: list[LaunchState] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for launch in self.launches if launch.status == status)

    @property
    def finished(self) -> bool:
        return all(launch.status in ("done", "failed") for launch in self.launches)

    def slurm_reasons(self) -> dict[str, int]:
        """Slurm's end states of failed tasks, counted ("TIMEOUT": 2)."""
        out: dict[str, int] = {}
        for launch in self.launches:
            if launch.status == "failed" and launch.slurm is not None:
                out[launch.slurm.state] = out.get(launch.slurm.state, 0) + 1
        return out


def _task_of(
    manifest: dict[str, Any], index: int, path: Path
) -> tuple[str | None, int, dict[str, Any]]:
    """(job id, task index, array entry) that runs launch ``index`` now (a requeue wins; for a
    script submitted by hand, the job id the task wrote when it started)."""
    for entry in manifest["arrays"]:
        if entry["offset"] <= index < entry["offset"] + entry["size"]:
            job = manifest["requeued"].get(str(index), entry["job_id"])
            if job is None:
                job = _hand_submitted_job(path / TASKS_DIR / str(index))
            return job, index - entry["offset"], entry
    raise KeyError(index)


def _hand_submitted_job(io_dir: Path) -> str | None:
    try:
        return json.loads((io_dir / TASK_FILE).read_text("utf-8")).get("array_job_id")
    except (OSError, ValueError):
        return None


def refresh(
    path: Path, requeue: bool = False, states: dict[tuple[str, int], TaskState] | None = None
) -> InvocationState:
    """Ask Slurm about an invocation's tasks; store a failure record (with Slurm's reason) for
    every run a finished task left unstored; with ``requeue``, resubmit preempted tasks once."""
    manifest = json.loads((path / MANIFEST).read_text("utf-8"))
    tasks = [_task_of(manifest, i, path) for i in range(len(manifest["launches"]))]
    if states is None:
        states = query_tasks({job for job, _, _ in tasks if job})
    store = ResultStore(Path(manifest["results_dir"]))
    inv = InvocationState(manifest["suite"], manifest["invocation_id"], path)
    to_requeue: dict[str, list[int]] = {}
    for index in range(len(manifest["launches"])):
        io_dir = path / TASKS_DIR / str(index)
        job, task, entry = tasks[index]
        state = states.get((job, task)) if job else None
        done = _read_done(io_dir)
        if done is not None:
            failed = sum(1 for r in done["stored"] if r["status"] != "ok")
            status = "failed" if done["by"] == "controller" else "done"
            inv.launches.append(LaunchState(index, status, state, failed))
        elif state is None or not state.terminal:
            running = state is not None and not state.pending
            inv.launches.append(LaunchState(index, "running" if running else "pending", state))
        elif requeue and state.state == "PREEMPTED" and str(index) not in manifest["requeued"]:
            to_requeue.setdefault(entry["script"], []).append(index)
            inv.launches.append(LaunchState(index, "pending", state))
        else:
            stored = _store_task_failure(store, io_dir, state, entry["sbatch_sha256"])
            inv.launches.append(LaunchState(index, "failed", state, len(stored)))
    if to_requeue:
        _requeue(path, manifest, to_requeue)
    return inv


def _read_done(io_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((io_dir / DONE_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _requeue(path: Path, manifest: dict[str, Any], by_script: dict[str, list[int]]) -> None:
    """Resubmit preempted launches once: ``sbatch --array=<indices>`` of their own script."""
    sbatch = _sbatch()
    for script, indices in by_script.items():
        entry = next(a for a in manifest["arrays"] if a["script"] == script)
        tasks = ",".join(str(i - entry["offset"]) for i in indices)
        proc = _call([sbatch, "--parsable", f"--array={tasks}", str(path / script)])
        if proc.returncode != 0:
            raise _refusal(proc)
        job = proc.stdout.strip().split(";")[0]
        for i in indices:
            manifest["requeued"][str(i)] = job
    write_json_atomic(path / MANIFEST, manifest)


def _store_task_failure(
    store: ResultStore, io_dir: Path, state: TaskState, sbatch_sha256: str
) -> list[StoredRun]:
    """Failure records for the runs of a task Slurm ended before it stored them, then done.json
    (by the controller) so this happens once."""
    from lembench.execute import _log_tail

    request_bytes = (io_dir / "request.json").read_bytes()
    request = json.loads(request_bytes)
    request_sha = hashlib.sha256(request_bytes).hexdigest()
    code, _, signal = state.exit_code.partition(":")
    slurm = {
        "job_id": None,
        "array_job_id": state.array_job_id,
        "array_task_id": state.task_id,
        "node": state.node,
        "partition": state.partition,
        "sbatch_sha256": sbatch_sha256,
        "gpus": None,
        "node_shared": None,
        "state": state.state,
        "exit_code": state.exit_code,
        "reason": state.reason,
    }
    tail = _log_tail(io_dir / "harness.log")
    message = f"{state.describe()}: the task ended before storing its runs" + (
        f"; harness log: {tail}" if tail else ""
    )
    log = io_dir / "harness.log"
    stored = []
    for exp in request["experiments"]:
        result = failed_result(
            request,
            exp,
            request_sha,
            now_iso(),
            now_iso(),
            REASON_BY_STATE.get(state.state, "crashed"),
            message,
            int(code) if code.isdigit() and signal in ("", "0") else None,
        )
        result = label_shared_node(result, slurm)
        if store.run_dir(result).exists():
            continue  # the task stored this one before it was stopped
        try:
            stored.append(StoredRun(store.store(result, log=log), result))
        except StoreError:
            continue
    write_json_atomic(
        io_dir / DONE_FILE,
        {
            "by": "controller",
            "at": now_iso(),
            "slurm": slurm,
            "stored": [{"experiment_id": r.experiment_id, "status": "failed"} for r in stored],
        },
    )
    return stored


def follow(
    path: Path,
    requeue: bool,
    poll_s: float,
    on_poll: Callable[[InvocationState], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> InvocationState:
    """Refresh until every launch of the invocation is done or failed."""
    import time

    sleep = sleep or time.sleep
    while True:
        inv = refresh(path, requeue=requeue)
        if on_poll is not None:
            on_poll(inv)
        if inv.finished:
            return inv
        sleep(poll_s)


def ingest(path: Path) -> tuple[list[StoredRun], list[str]]:
    """The stored runs of an invocation, read from the shared folder: (valid runs, one line per
    missing or invalid run).

    Every run was validated against result.schema.json by the store that wrote it (on the node,
    before its atomic rename). Here each file must parse, name the run asked for, and carry that
    store's stamp from this lembench version and result schema; a run without it (another
    version, a hand-made file) is validated again in full. At 10,000 runs a full second
    validation would cost more than the whole budget (benchmarks/slurm_scale.py).
    """
    from lembench import __version__
    from lembench.results.migrate import CURRENT_VERSION

    manifest = json.loads((path / MANIFEST).read_text("utf-8"))
    root = Path(manifest["results_dir"]) / manifest["suite"]
    runs, problems = [], []
    for launch in manifest["launches"]:
        for experiment_id, run_id in launch["runs"]:
            file = root / experiment_id / run_id / RESULT_FILE
            try:
                result = json.loads(file.read_text("utf-8"))
            except (OSError, ValueError) as e:
                problems.append(f"{file}: {e}")
                continue
            if not isinstance(result, dict) or (
                result.get("experiment_id"),
                result.get("run_id"),
            ) != (experiment_id, run_id):
                problems.append(f"{file}: names another experiment or run")
                continue
            stamp = (result.get("provenance") or {}).get("stored_by") or {}
            trusted = (
                stamp.get("validated") is True
                and stamp.get("lembench_version") == __version__
                and result.get("schema_version") == CURRENT_VERSION
            )
            problem = None if trusted else validation_problem(result)
            if problem is not None:
                problems.append(f"{file}: {problem}")
                continue
            runs.append(StoredRun(file.parent, result))
    return runs, problems


def invocations(store: ResultStore) -> list[Path]:
    """Every invocation folder under the store, oldest first per suite."""
    base = store.root / SLURM_DIR
    if not base.is_dir():
        return []
    return sorted(p.parent for p in base.glob(f"*/*/{MANIFEST}"))
