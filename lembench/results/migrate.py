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
    # v5 made closure_ok null where it cannot fail: a time_share split adds up by construction,
    # so a v4 "true" there was never a check. The baseline's sizing fields (windows, power_rel_se,
    # target_met) are optional: a v4 baseline was one fixed window and records none of them.
    out = {**result, "schema_version": 5}
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
