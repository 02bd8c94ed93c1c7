"""One array task of the ``slurm`` runtime, on the compute node:
``python -m lembench.runtimes.slurm_task <invocation folder> <offset>``.

It runs launch ``offset + SLURM_ARRAY_TASK_ID`` of the invocation through the inner runtime
(``local``: the harness in this Python; ``docker``: the backend's image on the node's engine,
podman included; ``pyxis``: ``srun --container-image``), then stores every experiment's result
(or a failure record) straight into the shared results folder with the store's atomic rename, each
stamped with ``provenance.slurm`` (job id, array index, node, partition, the sbatch script's hash,
the GPUs Slurm gave). Last it writes ``done.json`` in its io folder: the controller's sign that
the launch is finished and stored.

Energy on shared nodes: GPUs are the ones Slurm gave the task (``CUDA_VISIBLE_DEVICES`` for the
harness's NVML meter, ``SLURM_JOB_GPUS`` as the device request of a container). RAPL counts a
whole socket, so where other jobs ran on the node during the task, the CPU and DRAM components
are labelled ``details.shared_node`` (and ``provenance.slurm.node_shared`` is true).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.contract.io import EVENTS_FILE, FATAL_FILE, RESULTS_DIR, now_iso, write_json_atomic
from lembench.runtimes.base import Runtime
from lembench.runtimes.local import LocalRuntime
from lembench.runtimes.slurm_script import script_name
from lembench.store import ResultStore

MANIFEST = "manifest.json"
DONE_FILE = "done.json"
TASK_FILE = "task.json"
TASKS_DIR = "tasks"
SHARED_NODE_NOTE = (
    "other Slurm jobs ran on this node during the task; RAPL counts the whole socket, so this "
    "figure includes their CPU/DRAM energy"
)
#: Slurm variables the pyxis inner runtime must keep: srun inside the allocation needs them.
SLURM_ENV_PREFIXES = ("SLURM_", "SLURMD_")


def slurm_gpus(environ: Mapping[str, str]) -> list[int]:
    """Indices of the GPUs Slurm gave this job (``SLURM_JOB_GPUS``, else
    ``CUDA_VISIBLE_DEVICES`` as Slurm sets it for ``--gres=gpu``); [] when none."""
    for name in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        raw = environ.get(name, "").strip()
        if raw:
            try:
                return [int(tok) for tok in raw.split(",")]
            except ValueError:
                continue  # UUIDs or MIG names: not indices
    return []


def other_jobs_on_node(node: str | None, own_job: str | None) -> bool | None:
    """Whether jobs other than ``own_job`` run on ``node`` now (squeue); None when unknown."""
    if not node:
        return None
    try:
        proc = subprocess.run(
            ["squeue", "--noheader", f"--nodelist={node}", "--states=RUNNING", "--format=%A"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return any(job.strip() and job.strip() != own_job for job in proc.stdout.splitlines())


def slurm_provenance(environ: Mapping[str, str], sbatch_sha256: str | None) -> dict[str, Any]:
    """The job facts stored with every run of this task (result ``provenance.slurm``)."""

    def get(name: str) -> str | None:
        return environ.get(name) or None

    task = get("SLURM_ARRAY_TASK_ID")
    return {
        "job_id": get("SLURM_JOB_ID"),
        "array_job_id": get("SLURM_ARRAY_JOB_ID"),
        "array_task_id": int(task) if task is not None else None,
        "node": get("SLURMD_NODENAME"),
        "partition": get("SLURM_JOB_PARTITION"),
        "sbatch_sha256": sbatch_sha256,
        "gpus": slurm_gpus(environ),
        "node_shared": None,
    }


def label_shared_node(result: dict[str, Any], slurm: dict[str, Any]) -> dict[str, Any]:
    """``result`` with ``provenance.slurm`` set and, on a shared node, its CPU and DRAM energy
    components labelled (they are socket-wide, not the job's own)."""
    result = {**result, "provenance": {**result["provenance"], "slurm": slurm}}
    energy = result.get("energy")
    if slurm.get("node_shared") and isinstance(energy, dict):
        components = []
        for comp in energy.get("components") or []:
            if comp.get("domain") in ("cpu", "dram"):
                details = {**(comp.get("details") or {})}
                details["shared_node"] = True
                details["shared_node_note"] = SHARED_NODE_NOTE
                comp = {**comp, "details": details}
            components.append(comp)
        result["energy"] = {**energy, "components": components}
    return result


def inner_runtime(manifest: dict[str, Any], io_dir: Path, environ: Mapping[str, str]) -> Runtime:
    """The runtime that runs the harness inside this task."""
    inner = manifest["options"]["inner"]
    settings = dict(manifest["settings"])
    if inner == "docker":
        from lembench.runtimes.docker import DockerRuntime

        gpus = slurm_gpus(environ)
        settings["gpus"] = gpus or "none"  # exactly Slurm's GPUs, never "all" of a shared node
        return DockerRuntime(settings)
    if inner == "pyxis":
        # pyxis's srun options (https://github.com/NVIDIA/pyxis#usage): the image, the io folder
        # mounted at the same path, and that folder as the working directory.
        image = manifest["options"]["container_image"]
        mounts = f"{io_dir}:{io_dir}"
        command = [
            "srun",
            "--ntasks=1",
            f"--container-image={image}",
            f"--container-mounts={mounts}",
            f"--container-workdir={io_dir}",
            "python",
            "-m",
            "harness",
        ]
        return LocalRuntime(command, keep_env_prefixes=SLURM_ENV_PREFIXES)
    return LocalRuntime()


def run_task(
    invocation_dir: Path,
    offset: int,
    environ: Mapping[str, str],
    runtime: Runtime | None = None,
) -> int:
    """Run and store this task's launch; returns the process exit status (0 once stored).
    ``runtime``: the inner runtime (default: the manifest's ``inner``)."""
    from harness.contract.redact import Redactor
    from lembench.execute import _failure_reason, _ingest

    manifest = json.loads((invocation_dir / MANIFEST).read_text("utf-8"))
    index = offset + int(environ["SLURM_ARRAY_TASK_ID"])
    io_dir = invocation_dir / TASKS_DIR / str(index)
    # A resubmitted (requeued) task starts clean: what the killed attempt left is not this run's.
    for stale in (RESULTS_DIR, FATAL_FILE, EVENTS_FILE, DONE_FILE):
        path = io_dir / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    script = invocation_dir / script_name(offset)
    sha = hashlib.sha256(script.read_bytes()).hexdigest() if script.is_file() else None
    slurm = slurm_provenance(environ, sha)
    shared_at_start = other_jobs_on_node(slurm["node"], slurm["job_id"])
    # Which job runs this launch, for `lembench status` on scripts submitted by hand.
    write_json_atomic(io_dir / TASK_FILE, slurm)

    request_bytes = (io_dir / "request.json").read_bytes()
    request = json.loads(request_bytes)
    request_sha = hashlib.sha256(request_bytes).hexdigest()
    store = ResultStore(Path(manifest["results_dir"]))
    timeout_s = float(manifest["settings"]["timeout_s"])
    started_at = now_iso()
    runtime = runtime or inner_runtime(manifest, io_dir, environ)
    outcome = runtime.launch(io_dir, timeout_s)
    shared_at_end = other_jobs_on_node(slurm["node"], slurm["job_id"])
    seen = [s for s in (shared_at_start, shared_at_end) if s is not None]
    slurm["node_shared"] = any(seen) if seen else None

    reason = _failure_reason(
        io_dir, outcome.returncode, outcome.timed_out, timeout_s, outcome.log_path
    )
    stored = []
    # Secrets the request named are masked in what is stored, as on the local path.
    redactor = Redactor.for_request(request, environ)
    for exp in request["experiments"]:
        run = _ingest(
            store,
            redactor,
            request,
            request_sha,
            exp,
            io_dir,
            reason,
            outcome.returncode,
            outcome.log_path,
            started_at,
            amend=lambda r: label_shared_node(r, slurm),
        )
        stored.append({"experiment_id": run.experiment_id, "status": run.result["status"]})
    write_json_atomic(
        io_dir / DONE_FILE,
        {"by": "task", "at": now_iso(), "returncode": outcome.returncode, "stored": stored},
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the sbatch scripts."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m lembench.runtimes.slurm_task INVOCATION_DIR OFFSET", file=sys.stderr
        )
        return 2
    # scancel, a time limit or preemption sends SIGTERM: unwind like Ctrl-C so the inner runtime
    # stops the harness's process group; Slurm's record then says why the task ended.
    signal.signal(signal.SIGTERM, _terminate)
    return run_task(Path(args[0]), int(args[1]), os.environ)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
