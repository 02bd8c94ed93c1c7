"""The measurement protocol of one harness process: one load group, one cycle.

load model -> for each experiment: build prompts -> warmup -> measured window (meters running,
token timestamps recorded) -> metrics -> validate own output -> write. One failing experiment is
recorded as failed and the next one runs; failures that make the whole process useless (backend
missing, model not loadable) end it with a named exit code and a ``fatal.json`` saying why.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

from harness.backends.base import (
    Backend,
    BackendOOM,
    BackendUnavailable,
    ModelLoadError,
)
from harness.contract import lifeline, redact, registry
from harness.contract.exitcodes import ExitCode
from harness.contract.groups import load_group_id
from harness.contract.io import (
    RESULTS_DIR,
    EventLog,
    RequestError,
    now_iso,
    read_request,
    write_fatal,
    write_json_atomic,
)
from harness.contract.results import (
    base_result,
    failed_result,
    one_line,
    unknown_energy_method,
    validation_problem,
)
from harness.hardware.environment import snapshot
from harness.meters.base import MeterUnavailable
from harness.window.baseline import measure_baseline
from harness.window.host_load import load_before_baseline
from harness.window.measure import LoadedBackend, Session, measure_experiment
from harness.workloads import WorkloadError

log = logging.getLogger("harness")


class _InvalidResult(Exception):
    """The harness built a result that does not validate against result.schema.json."""


def _reason(e: Exception) -> str:
    """result.schema.json error.reason of an experiment that raised ``e``."""
    if isinstance(e, BackendOOM):
        return "oom"
    if isinstance(e, WorkloadError):
        return "config_error"
    if isinstance(e, _InvalidResult):
        return "internal"
    return "backend_error"


def _message(e: Exception) -> str:
    if isinstance(e, _InvalidResult):
        return f"harness produced an invalid result: {e}"
    return f"{type(e).__name__}: {e}"


class _Fatal(Exception):
    """Ends the whole process with ``code``; ``reason`` as in result.schema.json error.reason."""

    def __init__(self, code: ExitCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, one_line(message)


def run(request_path: Path) -> int:
    """Run the request at ``request_path``; results go to ``<its folder>/results/``. Returns the
    process exit code (an ``ExitCode``)."""
    io_dir = request_path.parent
    lifeline.start(io_dir)  # die with the controller: nobody would store what we measure
    events = EventLog(io_dir)
    try:
        request, request_sha = read_request(request_path)
    except RequestError as e:
        log.error("%s", e)
        write_fatal(io_dir, "config_error", str(e))
        return ExitCode.CONFIG_ERROR
    # From here on, no configured secret (API key, token, URL credentials) is written or logged,
    # whatever a server echoes back.
    redact.install(redact.for_environment(request))
    try:
        return _run_group(request, request_sha, io_dir, events)
    except _Fatal as e:
        fatal = e
    except Exception as e:  # a harness bug: still tell the controller why, in one line
        log.error("internal error:\n%s", traceback.format_exc())
        fatal = _Fatal(ExitCode.INTERNAL, "internal", f"{type(e).__name__}: {e}")
    log.error("%s", fatal.message)
    write_fatal(io_dir, fatal.reason, fatal.message)
    events.emit("fatal", reason=fatal.reason, message=fatal.message)
    return fatal.code


def _process_age_s() -> float | None:
    """Seconds since this process started (interpreter start and imports so far); None where
    psutil cannot tell."""
    try:
        import psutil

        return max(time.time() - psutil.Process().create_time(), 0.0)
    except Exception:  # informative only
        return None


def _run_group(request: dict[str, Any], request_sha: str, io_dir: Path, events: EventLog) -> int:
    startup_s = _process_age_s()
    experiments = request["experiments"]
    first = experiments[0]["config"]
    for exp in experiments:
        if load_group_id(exp["config"]) != request["load_group"]:
            raise _Fatal(
                ExitCode.CONFIG_ERROR,
                "config_error",
                f"experiment {exp['experiment_id']} is not in load group {request['load_group']}",
            )
    base_dir = Path(request["base_dir"]) if request.get("base_dir") else None
    measurement = request["measurement"]

    from harness.hardware.parallel import devices_used
    from harness.hardware.telemetry import Telemetry
    from harness.meters.chain import select_meters  # imported late: meters pull optional libraries

    try:
        # The group shares one model load, so its first experiment's devices are everyone's.
        meters, skipped = select_meters(measurement, first)
    except MeterUnavailable as e:
        raise _Fatal(ExitCode.CONFIG_ERROR, "config_error", f"meter unavailable: {e}") from None
    telemetry = Telemetry.open(first)
    environment = snapshot(telemetry)

    t_load = time.perf_counter()
    loaded = _load_backend(request, first, events)
    load_s = time.perf_counter() - t_load
    failures = 0
    try:
        # After the load: a meter may finish its setup in the background meanwhile (codecarbon).
        meter_info = {"used": [m.describe() for m in meters], "skipped": skipped}
        threads = loaded.backend.threads
        meter_info["threads"] = None if threads is None else threads.to_dict()
        session = Session(
            loaded=loaded,
            meters=meters,
            measurement=measurement,
            io_dir=io_dir,
            base_dir=base_dir,
            telemetry=telemetry,
            gpu_names=devices_used(loaded.model_info.get("device"), environment.get("gpus") or []),
        )
        # The host's load before anything is measured: recorded with every window, and a cached
        # baseline is only reused under the same load.
        session.load_before_pct = load_before_baseline()
        session.spend("load", load_s)
        if measurement["idle_baseline_s"] > 0 and meters:
            events.emit("baseline", seconds=measurement["idle_baseline_s"])
            t_base = time.perf_counter()
            try:
                session.baseline = measure_baseline(
                    meters,
                    measurement["idle_baseline_s"],
                    measurement["baseline_cache_s"],
                    load_pct=session.load_before_pct,
                )
            except Exception:  # no baseline means no net energy (warned), not a failed group
                log.error("idle baseline failed:\n%s", traceback.format_exc())
            session.spend("baseline", time.perf_counter() - t_base)
        for index, exp in enumerate(experiments):
            events.emit("experiment", index=index, total=len(experiments), id=exp["experiment_id"])
            started = now_iso()
            try:
                result = base_result(request, exp, request_sha, started)
                measure_experiment(
                    session,
                    exp["config"],
                    result,
                    emit=lambda event, i=index, **f: events.emit(event, index=i, **f),
                )
                result["environment"] = environment
                result["provenance"]["model"].update(loaded.model_info)
                result["provenance"]["backend"] = loaded.backend_info
                result["provenance"]["measurement"].update(meter_info)
                result["ended_at"] = now_iso()
                problem = validation_problem(result) or unknown_energy_method(result)
                if problem is not None:  # our own bug: record it rather than write an invalid file
                    raise _InvalidResult(problem)
            except Exception as e:  # one experiment's failure never stops the group
                log.error("experiment %s failed:\n%s", exp["experiment_id"], traceback.format_exc())
                result = failed_result(
                    request, exp, request_sha, started, now_iso(), _reason(e), _message(e)
                )
            failures += result["status"] != "ok"
            write_json_atomic(io_dir / RESULTS_DIR / f"{exp['experiment_id']}.json", result)
            events.emit("result", index=index, id=exp["experiment_id"], status=result["status"])
        # Where this process's time went, for the controller's wall-time breakdown.
        events.emit(
            "timings",
            startup_s=None if startup_s is None else round(startup_s, 3),
            **{f"{k}_s": round(v, 3) for k, v in session.spent_s.items()},
        )
    finally:
        loaded.backend.unload()
        for meter in meters:
            meter.close()
        if telemetry is not None:
            telemetry.close()
    return ExitCode.SOME_FAILED if failures else ExitCode.OK


def _load_backend(
    request: dict[str, Any], config: dict[str, Any], events: EventLog
) -> LoadedBackend:
    name = config["backend"]
    try:
        cls = registry.load(name)
    except registry.UnknownNameError as e:
        raise _Fatal(ExitCode.CONFIG_ERROR, "config_error", str(e)) from None
    except ImportError as e:
        raise _Fatal(ExitCode.BACKEND_UNAVAILABLE, "backend_unavailable", f"{name}: {e}") from None
    backend: Backend = cls(request["model"], config)
    events.emit("loading", backend=name, model=request["model"]["ref"])
    t0 = time.perf_counter()
    try:
        info = backend.load()
    except BackendUnavailable as e:
        raise _Fatal(ExitCode.BACKEND_UNAVAILABLE, "backend_unavailable", str(e)) from None
    except BackendOOM as e:
        raise _Fatal(ExitCode.OOM, "oom", f"out of memory loading the model: {e}") from None
    except ModelLoadError as e:
        raise _Fatal(ExitCode.MODEL_LOAD_ERROR, "model_load_error", str(e)) from None
    except Exception as e:
        log.error("model load failed:\n%s", traceback.format_exc())
        raise _Fatal(
            ExitCode.MODEL_LOAD_ERROR, "model_load_error", f"{type(e).__name__}: {e}"
        ) from None
    events.emit("loaded", seconds=round(time.perf_counter() - t0, 3))
    model_info = {
        "load_time_s": info.load_time_s,
        "device": info.device,
        "dtype": info.dtype,
        **info.model,
    }
    return LoadedBackend(backend, model_info, {"name": name, "versions": info.versions})
