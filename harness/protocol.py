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
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import registry
from harness.backends.base import (
    Backend,
    BackendOOM,
    BackendUnavailable,
    FlopsEstimate,
    Generation,
    ModelLoadError,
)
from harness.environment import snapshot
from harness.exitcodes import ExitCode
from harness.groups import load_group_id
from harness.io import (
    RESULTS_DIR,
    EventLog,
    RequestError,
    now_iso,
    read_request,
    write_fatal,
    write_json_atomic,
)
from harness.meters.base import Meter, MeterUnavailable
from harness.metrics import compute_metrics, request_timings
from harness.results import base_result, failed_result, one_line, validation_problem
from harness.workloads import WorkloadError

log = logging.getLogger("harness")

#: Windows shorter than this get a `window_too_short` warning: meter update periods (NVML ~100 ms,
#: codecarbon's sampling) make shorter windows unreliable. Issue-level rigour lives in the meters.
MIN_WINDOW_S = 1.0


@dataclass
class LoadedBackend:
    """A loaded backend and what the results need to say about it."""

    backend: Backend
    model_info: dict[str, Any]
    backend_info: dict[str, Any]
    flops_cache: dict[int, FlopsEstimate] = field(default_factory=dict)


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
    events = EventLog(io_dir)
    try:
        request, request_sha = read_request(request_path)
    except RequestError as e:
        log.error("%s", e)
        write_fatal(io_dir, "config_error", str(e))
        return ExitCode.CONFIG_ERROR
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


def _run_group(request: dict[str, Any], request_sha: str, io_dir: Path, events: EventLog) -> int:
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
    environment = snapshot()

    from harness.meters.chain import select_meters  # imported late: meters pull optional libraries

    try:
        meters, skipped = select_meters(request["measurement"])
    except MeterUnavailable as e:
        raise _Fatal(ExitCode.CONFIG_ERROR, "config_error", f"meter unavailable: {e}") from None
    meter_info = {"used": [m.describe() for m in meters], "skipped": skipped}

    loaded = _load_backend(request, first, events)
    failures = 0
    try:
        for index, exp in enumerate(experiments):
            events.emit("experiment", index=index, total=len(experiments), id=exp["experiment_id"])
            started = now_iso()
            try:
                result = base_result(request, exp, request_sha, started)
                measure_experiment(loaded, meters, exp["config"], base_dir, result, events, index)
                result["environment"] = environment
                result["provenance"]["model"].update(loaded.model_info)
                result["provenance"]["backend"] = loaded.backend_info
                result["provenance"]["measurement"].update(meter_info)
                result["ended_at"] = now_iso()
                problem = validation_problem(result)
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
    finally:
        loaded.backend.unload()
        for meter in meters:
            meter.close()
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


def measure_experiment(
    loaded: LoadedBackend,
    meters: list[Meter],
    config: dict[str, Any],
    base_dir: Path | None,
    result: dict[str, Any],
    events: EventLog,
    index: int,
) -> None:
    """Warm up, measure one window, and fill ``result`` with metrics, energy, flops and requests.

    ``result`` needs ``provenance.measurement.requested`` (the request's measurement block); the
    meters must be constructed already (``harness.meters.chain.select_meters``).
    """
    from harness.meters.carbon import co2_grams
    from harness.meters.chain import combine
    from harness.workloads import build_prompts

    backend = loaded.backend
    workload = config["workload"]
    prompts = build_prompts(workload, backend, base_dir)
    size = config["batch_size"]
    batches = [prompts[i : i + size] for i in range(0, len(prompts), size)]
    max_new, exact = workload["output_tokens"], workload["exact_output"]

    warmup_runs = config["warmup"]["runs"]
    events.emit("warmup", index=index, runs=warmup_runs)
    for i in range(warmup_runs):
        backend.generate(batches[i % len(batches)], max_new, exact)

    events.emit("measuring", index=index, batches=len(batches))
    generations: list[tuple[int, Generation]] = []
    with ExitStack() as stack:
        for meter in meters:
            stack.enter_context(meter)
        t0 = time.perf_counter()
        for b, batch in enumerate(batches):
            generations.extend((b, g) for g in backend.generate(batch, max_new, exact))
        t1 = time.perf_counter()
    components = [c for m in meters for c in m.components]

    energy = combine(components)
    measurement = result["provenance"]["measurement"]["requested"]
    co2_g, co2_info = co2_grams(energy["energy_total_j"], measurement)
    flops = _flops(loaded, generations)
    result["metrics"] = compute_metrics(generations, t1 - t0, energy, flops, co2_g)
    result["energy"] = {
        "method": energy["method"],
        "is_estimate": energy["is_estimate"],
        "components": [c.to_dict() for c in components],
        "co2": co2_info,
    }
    result["flops"] = {
        "per_output_token": flops.per_token,
        "method": flops.method,
        "params": flops.params,
        "sequence_length": flops.sequence_length,
        "note": flops.note,
    }
    result["requests"] = request_timings(generations, t0)
    result["warnings"] = _warnings(
        result["metrics"], energy, components, generations, max_new, exact
    )


def _flops(loaded: LoadedBackend, generations: list[tuple[int, Generation]]) -> FlopsEstimate:
    """FLOPs per token at this window's mean sequence length (cached per length; computed outside
    the measured window)."""
    gens = [g for _, g in generations]
    seq = round(sum(g.tokens_in + g.tokens_out for g in gens) / len(gens))
    if seq not in loaded.flops_cache:
        loaded.flops_cache[seq] = loaded.backend.flops_per_token(max(seq, 1))
    return loaded.flops_cache[seq]


def _warnings(
    metrics: dict[str, Any],
    energy: dict[str, Any],
    components: list[Any],
    generations: list[tuple[int, Generation]],
    max_new: int,
    exact: bool,
) -> list[dict[str, str]]:
    out = []
    if energy["is_estimate"]:
        methods = sorted({c.method for c in components if c.is_estimate})
        out.append(
            {
                "code": "estimate_used",
                "message": f"energy includes an estimate ({', '.join(methods)}), not a measurement",
            }
        )
    if energy["energy_total_j"] is None:
        out.append({"code": "no_energy", "message": "no meter measured any energy domain"})
    if metrics["duration_s"] < MIN_WINDOW_S:
        out.append(
            {
                "code": "window_too_short",
                "message": f"measured window {metrics['duration_s']:.3f} s is under "
                f"{MIN_WINDOW_S} s; "
                "energy per token is unreliable (add prompts or tokens)",
            }
        )
    if exact:
        short = [g.tokens_out for _, g in generations if g.tokens_out != max_new]
        if short:
            out.append(
                {
                    "code": "exact_output_violated",
                    "message": f"{len(short)} request(s) did not produce exactly {max_new} tokens",
                }
            )
    return out
