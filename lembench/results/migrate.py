"""Result files of earlier schema versions, upgraded to the current one on read.

Stored files are never rewritten (the store is append-only); readers upgrade what they load, so
every consumer (aggregation, display, report) sees one shape. Fields a version did not record
are present and null, never invented.
"""

from __future__ import annotations

from typing import Any

#: The result schema version this lembench reads and writes.
CURRENT_VERSION = 5

#: Metrics added by v2 (null in upgraded v1 results: v1 had no baseline, phases or peaks).
V2_METRICS = (
    "idle_power_w",
    "energy_net_j",
    "j_per_output_token_net",
    "energy_prefill_j",
    "energy_decode_j",
    "energy_idle_j",
    "j_per_input_token_prefill",
    "j_per_output_token_decode",
    "mfu",
    "mbu",
)

#: What v1 results say about device peaks (they did not record any).
V1_PEAK_SOURCE = "not recorded (v1 result)"

#: Metrics added by v4 (null in upgraded v3 results: nothing was scored before v4).
V4_METRICS = ("pass_at_1", "j_per_solved_task", "j_per_solved_task_net")

#: Metrics added by v5: the measured part of the energy and its per-token figures (derived on
#: upgrade from the components a v4 result recorded; see ``harness.contract.scope``).
V5_METRICS = (
    "energy_measured_j",
    "energy_estimated_j",
    "energy_measured_net_j",
    "j_per_output_token_measured",
    "j_per_output_token_measured_net",
)

#: Environment fields added by v2 that may be null. (``os`` and ``kernel`` are strings when
#: present and optional: an upgraded v1 result leaves them out rather than inventing them.)
V2_ENVIRONMENT = ("container_image_digest",)


class NewerSchemaError(ValueError):
    """The result was written by a newer lembench than this one."""


def schema_version_of(result: dict[str, Any]) -> int:
    """The result's schema version; ValueError when it has none, NewerSchemaError (a ValueError)
    when it is newer than ``CURRENT_VERSION``."""
    if not isinstance(result, dict):
        raise ValueError(f"a result is a JSON object, not {type(result).__name__}")
    version = result.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"result has no valid schema_version (got {version!r})")
    if version > CURRENT_VERSION:
        raise NewerSchemaError(
            f"result schema_version {version} is newer than this lembench "
            f"(max {CURRENT_VERSION}); upgrade lembench"
        )
    return version


def _with_nulls(section: Any, keys: tuple[str, ...]) -> Any:
    """A copy of ``section`` with each of ``keys`` set to None where absent (None stays None)."""
    if not isinstance(section, dict):
        return section
    return {**section, **{k: None for k in keys if k not in section}}


def _v1_to_v2(result: dict[str, Any]) -> dict[str, Any]:
    out = {**result, "schema_version": 2}
    out.setdefault("timeline", None)
    if "metrics" in out:
        out["metrics"] = _with_nulls(out["metrics"], V2_METRICS)
    if "energy" in out:
        out["energy"] = _with_nulls(out["energy"], ("baseline", "phases"))
    if isinstance(out.get("flops"), dict):
        flops = _with_nulls(out["flops"], ("peak_flops_per_s", "peak_memory_bw_bytes_per_s"))
        flops.setdefault("peak_source", V1_PEAK_SOURCE)
        out["flops"] = flops
    if "environment" in out:
        out["environment"] = _with_nulls(out["environment"], V2_ENVIRONMENT)
    return out


def _v2_to_v3(result: dict[str, Any]) -> dict[str, Any]:
    # v3 added the decoding parameters and the traffic block; a v2 result recorded neither.
    out = {**result, "schema_version": 3}
    out.setdefault("decoding", None)
    out.setdefault("traffic", None)
    return out


def _v3_to_v4(result: dict[str, Any]) -> dict[str, Any]:
    # v4 added the quality block (HumanEval pass@1) and the metrics derived from it; a v3 result
    # scored nothing, so they are null, never filled in after the fact.
    out = {**result, "schema_version": 4}
    out.setdefault("quality", None)
    if "metrics" in out:
        out["metrics"] = _with_nulls(out["metrics"], V4_METRICS)
    return out


def _v4_to_v5(result: dict[str, Any]) -> dict[str, Any]:
    # v5 names energy methods by pattern (the meters' descriptions) instead of a fixed list and
    # adds the optional ane domain and per-device labels: every v4 method (nvml_counter,
    # nvml_power_poll, rapl, estimate_codecarbon) is still one. v5 also split the energy into its
    # measured and estimated parts (energy.scope, the *_measured metrics) and added host_load.
    # v4 recorded every component with its own method and estimate flag, so the split is derived
    # from what was recorded, not invented; the net figure uses the recorded baseline's idle
    # power of the measured domains. How busy the host was was not recorded: host_load is null.
    # v5 also made closure_ok null where it cannot fail: a time_share split adds up by
    # construction, so a v4 "true" there was never a check. The baseline's sizing fields
    # (windows, power_rel_se, target_met) are optional: a v4 baseline was one fixed window.
    from harness.contract.scope import energy_scope, scope_metrics

    out = {**result, "schema_version": 5}
    out.setdefault("host_load", None)
    energy = out.get("energy")
    metrics = out.get("metrics")
    scope = None
    if isinstance(energy, dict):
        components = energy.get("components")
        if isinstance(components, list) and components:
            scope = energy_scope(components)
        out["energy"] = {**energy, "scope": None if scope is None else scope.to_dict()}
    if isinstance(metrics, dict):
        if scope is None:
            out["metrics"] = _with_nulls(metrics, V5_METRICS)
        else:
            baseline = energy.get("baseline") if isinstance(energy, dict) else None
            idle = baseline.get("power_w") if isinstance(baseline, dict) else None
            derived = scope_metrics(
                scope, metrics.get("tokens_out"), metrics.get("duration_s"), idle
            )
            out["metrics"] = {**derived, **metrics}  # a field already present is kept
    energy = out.get("energy")
    phases = energy.get("phases") if isinstance(energy, dict) else None
    if isinstance(phases, dict) and phases.get("method") == "time_share":
        out["energy"] = {**energy, "phases": {**phases, "closure_ok": None}}
    return out


def upgrade(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` in the current schema version (5). The input is not modified: changed sections
    are copied, the rest shared. A current result is returned as is; a newer one raises
    ValueError ("... upgrade lembench")."""
    version = schema_version_of(result)
    if version == 1:
        result = _v1_to_v2(result)
    if version <= 2:
        result = _v2_to_v3(result)
    if version <= 3:
        result = _v3_to_v4(result)
    if version <= 4:
        result = _v4_to_v5(result)
    return result
