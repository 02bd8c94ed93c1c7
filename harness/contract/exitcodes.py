"""Named exit codes of ``python -m harness``: the controller classifies a failed process by them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit status of one harness process (part of the controller/harness contract)."""

    OK = 0
    #: The harness ran, but at least one experiment failed; each failure is in its result file.
    SOME_FAILED = 3
    #: The request file is missing, unreadable or does not validate against request.schema.json.
    CONFIG_ERROR = 64
    #: The backend (or a library it needs) cannot be imported in this environment.
    BACKEND_UNAVAILABLE = 65
    #: The model could not be found or loaded.
    MODEL_LOAD_ERROR = 66
    #: Out of memory while loading the model.
    OOM = 67
    #: An unexpected exception in the harness itself.
    INTERNAL = 70


#: Failure reason (result.schema.json error.reason) for each non-OK exit code.
REASON_BY_EXIT_CODE: dict[int, str] = {
    ExitCode.CONFIG_ERROR: "config_error",
    ExitCode.BACKEND_UNAVAILABLE: "backend_unavailable",
    ExitCode.MODEL_LOAD_ERROR: "model_load_error",
    ExitCode.OOM: "oom",
    ExitCode.INTERNAL: "internal",
}


def classify_exit(returncode: int | None, timed_out: bool = False) -> str:
    """Failure reason for a harness process that ended with ``returncode`` (negative: a signal)."""
    if timed_out:
        return "timeout"
    if returncode is None or returncode < 0:
        return "crashed"
    return REASON_BY_EXIT_CODE.get(returncode, "crashed")
