"""Running a planned suite: write each launch's request, run the harness through a runtime, then
validate and store every result (or a failure record saying why there is none)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.contract.exitcodes import classify_exit
from harness.contract.io import (
    EVENTS_FILE,
    FATAL_FILE,
    RESULTS_DIR,
    TIMELINES_DIR,
    now_iso,
    write_json_atomic,
)
from harness.contract.results import failed_result
from harness.contract.schemas import error_path, first_error, schema_version
from lembench import __version__
from lembench.plan import Launch
from lembench.runtimes import Runtime
from lembench.store import TIMELINE_FILE, ResultStore, StoredRun
from lembench.suite import Suite


@dataclass
class RunReport:
    """What one ``lembench run`` did."""

    invocation_id: str
    stored: list[StoredRun] = field(default_factory=list)
    skipped: int = 0  # runs already stored (resume)

    @property
    def failed(self) -> list[StoredRun]:
        return [r for r in self.stored if r.result["status"] != "ok"]


def new_invocation_id() -> str:
    """Sortable, unique id of one ``lembench run``: UTC time plus random hex."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def controller_provenance(suite: Suite, runtime: str) -> dict[str, Any]:
    """Who asked for the runs: passed through the harness into every result."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain") if commit else None
    return {
        "lembench_version": __version__,
        "runtime": runtime,
        "command": " ".join(["lembench", *sys.argv[1:]]),
        "suite_file": str(suite.path),
        "suite_sha256": suite.sha256,
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
    }


def build_request(
    suite: Suite,
    launch: Launch,
    invocation_id: str,
    controller: dict[str, Any],
    validate: bool = True,
) -> dict[str, Any]:
    """The request.json of one launch (validated against request.schema.json unless
    ``validate`` is false: the slurm runtime writes thousands at once and checks the first, as
    every request is built by this same code from configs the suite loader validated)."""
    request = {
        "schema_version": schema_version("request"),
        "suite": suite.name,
        "invocation_id": invocation_id,
        "load_group": launch.group_id,
        "cycle": launch.cycle,
        "cycles": suite.settings["cycles"],
        "model": launch.model,
        "measurement": suite.settings["measurement"],
        "base_dir": str(suite.base_dir),
        "experiments": [
            {
                "experiment_id": e.experiment_id,
                "run_id": f"{invocation_id}-c{launch.cycle}",
                "config": e.config,
            }
            for e in launch.experiments
        ],
        "controller": controller,
    }
    error = first_error("request", request) if validate else None
    if error is not None:  # our own bug, not the user's
        raise RuntimeError(
            f"controller built an invalid request: {error_path(error)}: {error.message}"
        )
    return request


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _failure_reason(
    io_dir: Path, returncode: int | None, timed_out: bool, timeout_s: float, log: Path
) -> tuple[str, str]:
    """Why a launch left an experiment without a result: fatal.json, else exit code and log."""
    if timed_out:
        return "timeout", f"harness exceeded timeout_s={timeout_s:g} and was killed"
    try:
        fatal = json.loads((io_dir / FATAL_FILE).read_text("utf-8"))
        return fatal["reason"], fatal["message"]
    except (OSError, ValueError, KeyError):
        pass
    reason = classify_exit(returncode)
    how = (
        f"killed by signal {-returncode}"
        if returncode and returncode < 0
        else f"exit code {returncode}"
    )
    tail = _log_tail(log)
    return reason, f"harness ended ({how}) without a result" + (f": {tail}" if tail else "")


def _ingest(
    store: ResultStore,
    request: dict[str, Any],
    request_sha: str,
    exp: dict[str, Any],
    io_dir: Path,
    outcome_reason: tuple[str, str],
    returncode: int | None,
    log: Path,
    started_at: str,
    amend: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> StoredRun:
    """Store the harness's result for ``exp`` (validated on the host), or a failure record.
    ``amend`` adds what the runtime knows and the harness cannot (the slurm runtime's job
    provenance) to either, before validation."""
    amend = amend or (lambda r: r)
    path = io_dir / RESULTS_DIR / f"{exp['experiment_id']}.json"
    raw: bytes | None = None
    result: dict[str, Any] | None = None
    if path.exists():
        raw = path.read_bytes()
        try:
            result = json.loads(raw)
            problem = None if isinstance(result, dict) else "not a JSON object"
        except ValueError as e:
            problem = f"not JSON: {e}"
        # Untrusted input: it must be the run we asked for, and valid.
        ids = (exp["experiment_id"], exp["run_id"])
        if problem is None and (result.get("experiment_id"), result.get("run_id")) != ids:
            problem = "result names another experiment or run"
        if problem is None:
            timeline = io_dir / TIMELINES_DIR / f"{exp['experiment_id']}.jsonl"
            files = {TIMELINE_FILE: timeline} if timeline.is_file() else None
            result = amend(result)
            try:
                return StoredRun(store.store(result, log=log, files=files), result)
            except ValueError as e:
                problem = str(e)
        result = amend(
            failed_result(
                request, exp, request_sha, started_at, now_iso(), "invalid_result", problem
            )
        )
    else:
        reason, message = outcome_reason
        code = returncode if returncode is not None and returncode >= 0 else None
        result = amend(
            failed_result(request, exp, request_sha, started_at, now_iso(), reason, message, code)
        )
    return StoredRun(store.store(result, log=log, raw=raw), result)


def run_launches(
    suite: Suite,
    launches: list[Launch],
    store: ResultStore,
    runtime: Runtime,
    invocation_id: str,
    on_event: Callable[[Launch, dict[str, Any]], None] | None = None,
    on_stored: Callable[[StoredRun], None] | None = None,
) -> RunReport:
    """Run ``launches`` in order, storing every experiment's run. ``on_event`` receives harness
    progress events as they appear; ``on_stored`` each stored run."""
    report = RunReport(invocation_id)
    controller = controller_provenance(suite, runtime.name)
    work = store.work_dir(invocation_id)
    timeout_s = float(suite.settings["timeout_s"])
    try:
        for n, launch in enumerate(launches):
            if n and suite.settings["gap_s"]:
                time.sleep(suite.settings["gap_s"])
            io_dir = work / f"{launch.group_id}-c{launch.cycle}"
            io_dir.mkdir(parents=True)
            request = build_request(suite, launch, invocation_id, controller)
            write_json_atomic(io_dir / "request.json", request)
            request_sha = hashlib.sha256((io_dir / "request.json").read_bytes()).hexdigest()
            started_at = now_iso()
            tail = _EventTail(io_dir / EVENTS_FILE)

            def poll(launch: Launch = launch, tail: _EventTail = tail) -> None:
                for event in tail.read_new():
                    if on_event is not None:
                        on_event(launch, event)

            outcome = runtime.launch(io_dir, timeout_s, on_poll=poll)
            reason = _failure_reason(
                io_dir, outcome.returncode, outcome.timed_out, timeout_s, outcome.log_path
            )
            for exp in request["experiments"]:
                run = _ingest(
                    store,
                    request,
                    request_sha,
                    exp,
                    io_dir,
                    reason,
                    outcome.returncode,
                    outcome.log_path,
                    started_at,
                )
                report.stored.append(run)
                if on_stored is not None:
                    on_stored(run)
            shutil.rmtree(io_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.parent.rmdir()  # .work/ itself, when no other invocation uses it
    return report


class _EventTail:
    """Reads the JSON lines appended to the harness's events file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # only whole lines; a partial one is read next time
        self.offset += end
        events = []
        for line in data[:end].splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events
