"""Which part of a window's energy is measured and which is estimated: the ranked figure.

A window's energy is the sum of one component per domain (gpu, cpu, dram), each with its own
``method`` and ``is_estimate`` flag. A mixed result (NVML for the GPU, codecarbon's model for the
CPU and DRAM: every cloud VM and non-root container without readable RAPL) is not "an estimate":
its measured part is a measurement. The ranked J/token is that measured part (GPU energy, as the
ML.ENERGY leaderboard ranks); the whole-system figure (measured + estimated) is kept beside it and
labelled an estimate. Only a result with no measured component at all is ranked as an estimate.

One definition for the harness (which writes the fields) and the controller's migration of older
results (which derives them from the components those results recorded), so both agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Domain order of methods and lists (as harness.meters.base.DOMAINS).
_DOMAINS = ("gpu", "cpu", "dram")

#: Values of ``energy.scope.ranked``.
RANKED_MEASURED = "measured"
RANKED_ESTIMATE = "estimate"
RANKED_NONE = "none"


@dataclass(frozen=True)
class EnergyScope:
    """The measured and the estimated part of one window's energy."""

    measured_j: float | None  # sum of measured components; None when none was measured
    estimated_j: float | None  # sum of estimated components; None when none was estimated
    measured_domains: tuple[str, ...]
    measured_method: str | None
    estimated_domains: tuple[str, ...]
    estimated_method: str | None

    @property
    def ranked(self) -> str:
        """``measured`` when any component was measured, ``estimate`` when all were estimated,
        ``none`` without energy."""
        if self.measured_domains:
            return RANKED_MEASURED
        return RANKED_ESTIMATE if self.estimated_domains else RANKED_NONE

    def to_dict(self) -> dict[str, Any]:
        """The result's ``energy.scope`` block."""
        return {
            "ranked": self.ranked,
            "measured_domains": list(self.measured_domains),
            "measured_method": self.measured_method,
            "estimated_domains": list(self.estimated_domains),
            "estimated_method": self.estimated_method,
        }


def _get(component: Any, name: str) -> Any:
    if isinstance(component, Mapping):
        return component.get(name)
    return getattr(component, name)


def _order(domain: str) -> int:
    return _DOMAINS.index(domain) if domain in _DOMAINS else len(_DOMAINS)


def energy_scope(components: Iterable[Any]) -> EnergyScope:
    """Split ``components`` (``EnergyComponent`` objects or their dicts) by ``is_estimate``."""
    parts: dict[bool, list[Any]] = {False: [], True: []}
    for c in sorted(components, key=lambda c: _order(str(_get(c, "domain")))):
        parts[bool(_get(c, "is_estimate"))].append(c)

    def total(cs: list[Any]) -> float | None:
        return sum(float(_get(c, "energy_j")) for c in cs) if cs else None

    def method(cs: list[Any]) -> str | None:
        methods: list[str] = []
        for c in cs:
            if _get(c, "method") not in methods:
                methods.append(str(_get(c, "method")))
        return "+".join(methods) or None

    return EnergyScope(
        measured_j=total(parts[False]),
        estimated_j=total(parts[True]),
        measured_domains=tuple(str(_get(c, "domain")) for c in parts[False]),
        measured_method=method(parts[False]),
        estimated_domains=tuple(str(_get(c, "domain")) for c in parts[True]),
        estimated_method=method(parts[True]),
    )


def scope_metrics(
    scope: EnergyScope,
    tokens_out: int | None,
    duration_s: float | None,
    idle_power_w: Mapping[str, float] | None,
) -> dict[str, float | None]:
    """The v5 metrics of the measured part: ``energy_measured_j``, ``energy_estimated_j``,
    ``energy_measured_net_j`` (idle power of the measured domains only, x the window),
    ``j_per_output_token_measured`` and ``j_per_output_token_measured_net``.

    ``idle_power_w``: the baseline's power per domain (None without a baseline: no net figures).
    """
    measured = scope.measured_j
    net = None
    if measured is not None and idle_power_w is not None and duration_s is not None:
        idle = sum(float(idle_power_w.get(d, 0.0)) for d in scope.measured_domains)
        net = measured - idle * duration_s

    def per_token(value: float | None) -> float | None:
        return None if value is None or not tokens_out else value / tokens_out

    return {
        "energy_measured_j": measured,
        "energy_estimated_j": scope.estimated_j,
        "energy_measured_net_j": net,
        "j_per_output_token_measured": per_token(measured),
        "j_per_output_token_measured_net": per_token(net),
    }
