"""The ranked energy figures of a stored run: the measured part when there is one.

``harness.contract.scope`` defines the split of a window's energy into its measured and estimated
components; this module picks, for the controller's tables, which figure a run is ranked on.
"""

from __future__ import annotations

from typing import Any

#: The ranked figures, taken from the measured part of the energy when there is one
#: (``harness.contract.scope``): ranked column -> (measured metric, whole-system metric).
RANKED = {
    "j_per_output_token": ("j_per_output_token_measured", "j_per_output_token"),
    "j_per_output_token_net": ("j_per_output_token_measured_net", "j_per_output_token_net"),
    "j_per_request": ("j_per_request_measured", "j_per_request"),
}


def energy_scope_of(energy: dict[str, Any], metrics: dict[str, Any]) -> tuple[str | None, dict]:
    """(``energy.scope.ranked``, the metrics plus ``j_per_request_measured``) of a result.

    Results written by the harness (v5) and upgraded ones (the migration derives the split from
    the recorded components) carry ``energy.scope`` and the ``*_measured`` metrics. A document
    without a scope (hand-built, e.g. by a third-party tool) gives None: it is ranked on its whole
    energy under its own ``is_estimate`` flag, as before the split existed.
    """
    scope = energy.get("scope") if isinstance(energy.get("scope"), dict) else None
    if scope is None or scope.get("ranked") != "measured":
        return (scope or {}).get("ranked"), metrics
    measured, requests = metrics.get("energy_measured_j"), metrics.get("num_requests")
    if measured is None or "j_per_output_token_measured" not in metrics:
        return None, metrics  # a scope without its figures: nothing to rank it on but the whole
    per_request = measured / requests if isinstance(requests, int) and requests > 0 else None
    return "measured", {**metrics, "j_per_request_measured": per_request}
