"""Running a planned suite: write each launch's request, run the harness through a runtime, then
validate and store every result (or a failure record saying why there is none)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
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
    HEARTBEAT_FILE,
    RESULTS_DIR,
    TIMELINES_DIR,
    now_iso,
    write_json_atomic,
)
from harness.contract.redact import Redactor
from harness.contract.results import failed_result
from harness.contract.schemas import error_path, first_error, schema_version
from lembench import __version__
from lembench.errors import UserError
from lembench.gaps import ThermalGap
from lembench.plan import Launch
from lembench.runtimes import Runtime
from lembench.runtimes.base import LOG_FILE
from lembench.store import TIMELINE_FILE, ResultStore, StoredRun
from lembench.store_recovery import OWNER_FILE
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
        "convergence": suite.settings.get("convergence"),
        "model": launch.model,
        "measurement": suite.settings["measurement"],
        "base_dir": str(suite.base_dir),
        "experiments": [
            {
                "experiment_id": e.experiment_id,
                # One id per experiment run (experiments of one launch share invocation and
                # cycle): `results show RUN_ID` names exactly one result.
                "run_id": f"{invocation_id}-{e.experiment_id[:6]}-c{launch.cycle}",
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
    redactor: Redactor,
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
                run_dir = store.store(result, log=log, files=files, redactor=redactor)
                return StoredRun(run_dir, redactor.document(result))
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
    run_dir = store.store(result, log=log, raw=raw, redactor=redactor)
    return StoredRun(run_dir, redactor.document(result))


class StoreWriteError(UserError):
    """Storing a finished result failed (disk full, folder gone): the harness's output is kept
    in its io folder for the next run (recovery, see lembench.store_recovery) to store."""

    exit_code = 1


def run_launches(
    suite: Suite,
    launches: list[Launch],
    store: ResultStore,
    runtime: Runtime,
    invocation_id: str,
    on_event: Callable[[Launch, dict[str, Any]], None] | None = None,
    on_stored: Callable[[StoredRun], None] | None = None,
    before_launch: Callable[[Launch], Launch | None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> RunReport:
    """Run ``launches`` in order, storing every experiment's run as soon as the harness has
    written its result (so an interrupted run keeps every finished measurement). ``on_event``
    receives harness progress events as they appear; ``on_stored`` each stored run;
    ``before_launch`` may narrow a launch to the experiments still to run (None: skip it), as
    the convergence rule does; ``on_notice`` gets one-line notices (the thermal gap's).

    A store that fails (disk full) raises StoreWriteError and leaves the io folder in place;
    the next run of the suite stores what it holds."""
    report = RunReport(invocation_id)
    gap = ThermalGap(suite.settings, on_notice)
    controller = controller_provenance(suite, runtime.name)
    work = store.work_dir(invocation_id)
    timeout_s = float(suite.settings["timeout_s"])
    keep: Path | None = None  # an io folder whose results could not be stored
    work.mkdir(parents=True)
    write_json_atomic(work / OWNER_FILE, {"suite": suite.name, "controller": controller})
    try:
        started = 0
        for planned in launches:
            launch = planned if before_launch is None else before_launch(planned)
            if launch is None or not launch.experiments:
                report.skipped += len(planned.experiments)
                continue
            if started:
                gap.wait()  # thermal recovery between launches (lembench.gaps)
            started += 1
            io_dir = work / f"{launch.group_id}-c{launch.cycle}"
            io_dir.mkdir(parents=True)
            request = build_request(suite, launch, invocation_id, controller)
            write_json_atomic(io_dir / "request.json", request)
            request_sha = hashlib.sha256((io_dir / "request.json").read_bytes()).hexdigest()
            started_at = now_iso()
            tail = _EventTail(io_dir / EVENTS_FILE)
            lifeline = Heartbeat(io_dir)
            ingest = _Ingester(store, request, request_sha, io_dir, started_at, report, on_stored)

            def poll(
                launch: Launch = launch,
                tail: _EventTail = tail,
                lifeline: Heartbeat = lifeline,
                ingest: _Ingester = ingest,
            ) -> None:
                lifeline.beat()
                for event in tail.read_new():
                    if on_event is not None:
                        on_event(launch, ingest.redactor.document(event))
                ingest.finished()

            lifeline.beat()
            try:
                try:
                    outcome = runtime.launch(io_dir, timeout_s, on_poll=poll)
                except StoreWriteError:
                    raise
                except BaseException:  # Ctrl-C: the runtime stopped the harness; keep its results
                    ingest.finished()
                    raise
                ingest.log = outcome.log_path
                reason = _failure_reason(
                    io_dir, outcome.returncode, outcome.timed_out, timeout_s, outcome.log_path
                )
                for exp in list(ingest.pending.values()):
                    ingest.one(exp, reason, outcome.returncode)
            except StoreWriteError:
                keep = io_dir
                raise
            shutil.rmtree(io_dir, ignore_errors=True)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
            with contextlib.suppress(OSError):
                work.parent.rmdir()  # .work/ itself, when no other invocation uses it
        else:
            for other in work.iterdir():  # only the unstored io folder is worth keeping
                if other.is_dir() and other != keep:
                    shutil.rmtree(other, ignore_errors=True)
    return report


class _Ingester:
    """Stores the runs of one launch: each result as soon as the harness has written it, and a
    failure record for every experiment left without one when the launch ends."""

    def __init__(
        self,
        store: ResultStore,
        request: dict[str, Any],
        request_sha: str,
        io_dir: Path,
        started_at: str,
        report: RunReport,
        on_stored: Callable[[StoredRun], None] | None,
    ) -> None:
        self.store, self.request, self.request_sha = store, request, request_sha
        self.io_dir, self.started_at = io_dir, started_at
        self.report, self.on_stored = report, on_stored
        self.log = io_dir / LOG_FILE
        self.pending = {e["experiment_id"]: e for e in request["experiments"]}
        #: The launch's secrets, masked in everything stored (and in progress shown).
        self.redactor = Redactor.for_request(request, os.environ)

    def one(self, exp: dict[str, Any], reason: tuple[str, str], code: int | None) -> None:
        """Store ``exp``'s result (or failure record); StoreWriteError when the store fails."""
        try:
            run = _ingest(
                self.store,
                self.redactor,
                self.request,
                self.request_sha,
                exp,
                self.io_dir,
                reason,
                code,
                self.log,
                self.started_at,
            )
        except OSError as e:
            raise StoreWriteError(
                f"cannot store results: {e.strerror or e}; what the harness wrote is kept in "
                f"{self.io_dir} and the next `lembench run --resume` of this suite stores it",
                file=self.store.root,
            ) from None
        del self.pending[exp["experiment_id"]]
        self.report.stored.append(run)
        if self.on_stored is not None:
            self.on_stored(run)

    def finished(self) -> None:
        """Store every result the harness has finished so far. It writes each one atomically once
        its experiment is over, so a file that exists is whole."""
        for exp in list(self.pending.values()):
            if (self.io_dir / RESULTS_DIR / f"{exp['experiment_id']}.json").exists():
                self.one(exp, ("internal", "unused: the result exists"), None)


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


class Heartbeat:
    """The controller's sign of life in an io folder: the harness ends itself when it goes stale
    (harness.contract.lifeline), so a controller killed hard leaves no harness measuring on."""

    def __init__(self, io_dir: Path, every_s: float = 1.0) -> None:
        self.path = io_dir / HEARTBEAT_FILE
        self.every_s = every_s
        self.last = float("-inf")

    def beat(self) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        with contextlib.suppress(OSError):
            self.path.write_bytes(b"")
            os.utime(self.path)
