"""Choosing the meters for a measurement and combining their components into the result's energy.

``select_meters`` builds meters once per harness process (construction is where a meter says it
cannot run); the protocol then uses them for every window and closes them at the end.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from harness.contract import registry
from harness.meters.base import DOMAINS, EnergyComponent, Meter, MeterUnavailable
from harness.meters.gpu import GpuMeter


def _construct(name: str, measurement: dict[str, Any], config: dict[str, Any] | None) -> Meter:
    cls = registry.load(name, "meter")
    if issubclass(cls, GpuMeter):  # GPU meters measure only the experiment's devices
        return cls(measurement, config=config)
    return cls(measurement)


def _close_all(meters: list[Meter]) -> None:
    for meter in meters:
        with contextlib.suppress(Exception):  # best effort while already failing
            meter.close()


def auto_order(platform: str | None = None) -> list[str]:
    """Built-in meters that ``auto`` tries on ``platform`` (default: this one), in order:
    measuring meters before estimating ones, then by name (from the descriptions)."""
    platform = platform or sys.platform
    descriptions = registry.meter_descriptions()
    names = [
        n
        for n in registry.builtin_meters()
        if n in descriptions and any(platform.startswith(p) for p in descriptions[n].platforms)
    ]
    return sorted(
        names,
        key=lambda n: (any(m.kind == "estimate" for m in descriptions[n].methods), n),
    )


def _select_auto(
    measurement: dict[str, Any], config: dict[str, Any] | None
) -> tuple[list[Meter], dict[str, str]]:
    meters: list[Meter] = []
    skipped: dict[str, str] = {}
    try:
        _auto_into(measurement, config, meters, skipped)
    except BaseException:
        _close_all(meters)  # a crash (not an unavailability) must not leak NVML or threads
        raise
    return meters, skipped


def _auto_into(
    measurement: dict[str, Any],
    config: dict[str, Any] | None,
    meters: list[Meter],
    skipped: dict[str, str],
) -> None:
    owner: dict[str, str] = {}  # domain -> meter measuring it
    descriptions = registry.meter_descriptions()
    for name in auto_order():
        taken = [d for d in descriptions[name].domains if d in owner]
        if taken:
            by = sorted({owner[d] for d in taken})
            skipped[name] = f"not needed: {', '.join(by)} measures {'/'.join(taken)}"
            continue
        try:
            meter = _construct(name, measurement, config)
        except MeterUnavailable as exc:
            skipped[name] = str(exc)
            continue
        meters.append(meter)
        for domain in meter.domains:
            owner[domain] = name


def select_meters(
    measurement: dict[str, Any], config: dict[str, Any] | None = None
) -> tuple[list[Meter], dict[str, str]]:
    """Meters for ``measurement["meters"]`` and, per meter not used, why. ``config``: the
    experiment config whose devices GPU meters measure (None: every visible GPU).

    ``["auto"]`` (the default): each built-in meter for this platform, measuring ones first
    (``auto_order``), taken when it works and no meter taken before covers one of its domains;
    unavailable ones are skipped with their one-line reason, and the list may be empty when
    nothing can measure here. An explicit list constructs exactly those meters: one that is
    unavailable raises MeterUnavailable (after closing those already built), two meters on one
    domain or "auto" mixed with names raise ValueError, an unknown name UnknownNameError.
    """
    names = list(measurement.get("meters") or ["auto"])
    if "auto" in names:
        if len(names) > 1:
            raise ValueError(f"meters: 'auto' cannot be combined with other meters ({names})")
        return _select_auto(measurement, config)
    # Check domains on the classes first: construction can be slow (codecarbon) or hold devices.
    owner: dict[str, str] = {}
    for name in names:
        for domain in registry.load(name, "meter").domains:
            if domain in owner:
                raise ValueError(
                    f"meters: {owner[domain]!r} and {name!r} both measure {domain}; "
                    "use one meter per domain"
                )
            owner[domain] = name
    meters: list[Meter] = []
    for name in names:
        try:
            meters.append(_construct(name, measurement, config))
        except BaseException:
            _close_all(meters)
            raise
    return meters, {}


def combine(components: list[EnergyComponent]) -> dict[str, Any]:
    """Per-domain and total energy of one window, with the methods used and the estimate flag.

    Returns {"energy_gpu_j", "energy_cpu_j", "energy_dram_j" (None when not measured),
    "energy_total_j" (sum of measured domains, None if none), "method" (unique component methods
    joined by "+", in gpu, cpu, dram order; "" if none), "is_estimate" (any component estimated)}.
    Two components for one domain raise ValueError: summing them would double count.
    """
    per_domain: dict[str, float | None] = dict.fromkeys(DOMAINS)
    methods: list[str] = []
    ordered = sorted(components, key=lambda c: DOMAINS.index(c.domain))
    for c in ordered:
        if per_domain[c.domain] is not None:
            raise ValueError(
                f"two energy components for domain {c.domain} ({c.meter}): one meter per domain"
            )
        per_domain[c.domain] = c.energy_j
        if c.method not in methods:
            methods.append(c.method)
    measured = [v for v in per_domain.values() if v is not None]
    return {
        "energy_gpu_j": per_domain["gpu"],
        "energy_cpu_j": per_domain["cpu"],
        "energy_dram_j": per_domain["dram"],
        "energy_total_j": sum(measured) if measured else None,
        "method": "+".join(methods),
        "is_estimate": any(c.is_estimate for c in components),
    }
