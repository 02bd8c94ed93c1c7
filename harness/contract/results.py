"""Building result documents (result.schema.json). Shared by the harness (its own results) and the
controller (failure records for processes that died before writing theirs)."""

from __future__ import annotations

from typing import Any

from harness import __version__
from harness.contract.schemas import error_path, first_error, schema_version


def base_result(
    request: dict[str, Any], experiment: dict[str, Any], request_sha256: str, started_at: str
) -> dict[str, Any]:
    """The fields every result of ``experiment`` (an item of ``request['experiments']``) carries."""
    return {
        "schema_version": schema_version("result"),
        "status": "ok",
        "suite": request["suite"],
        "experiment_id": experiment["experiment_id"],
        "run_id": experiment["run_id"],
        "invocation_id": request["invocation_id"],
        "load_group": request["load_group"],
        "cycle": request["cycle"],
        "cycles": request["cycles"],
        "convergence": request.get("convergence"),
        "config": experiment["config"],
        "started_at": started_at,
        "ended_at": started_at,
        "warnings": [],
        "timeline": None,
        "provenance": {
            "harness_version": __version__,
            "request_sha256": request_sha256,
            "controller": request["controller"],
            "model": {"requested": request["model"]},
            "measurement": {"requested": request["measurement"]},
        },
    }


def failed_result(
    request: dict[str, Any],
    experiment: dict[str, Any],
    request_sha256: str,
    started_at: str,
    ended_at: str,
    reason: str,
    message: str,
    exit_code: int | None = None,
) -> dict[str, Any]:
    """A result recording that ``experiment`` failed, and why (one line)."""
    result = base_result(request, experiment, request_sha256, started_at)
    result.update(
        status="failed",
        ended_at=ended_at,
        error={"reason": reason, "message": one_line(message), "exit_code": exit_code},
    )
    return result


def one_line(text: str, limit: int = 500) -> str:
    """Collapse whitespace to one line and cap its length (messages are shown in tables)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def validation_problem(result: dict[str, Any]) -> str | None:
    """None when ``result`` is valid against result.schema.json, else a one-line description."""
    error = first_error("result", result)
    if error is None:
        return None
    return f"{error_path(error) or '(top level)'}: {one_line(error.message, 300)}"


def unknown_energy_method(result: dict[str, Any]) -> str | None:
    """None when every energy component's method is one a registered meter describes, else a
    one-line description. The harness checks its own results with this on top of the schema
    (which only fixes the name's shape, so the controller accepts a plugin meter's method
    without having the plugin installed)."""
    from harness.contract import registry

    known = registry.energy_methods()
    energy = result.get("energy") or {}
    for i, component in enumerate(energy.get("components") or []):
        method = component.get("method")
        if method not in known:
            return (
                f"energy.components[{i}].method: {method!r} is not described by any registered "
                f"meter (known: {', '.join(sorted(known))})"
            )
    return None
