"""Choosing the meters for a measurement and combining their components into the result's energy.

``select_meters`` builds meters once per harness process (construction is where a meter says it
cannot run); the protocol then uses them for every window and closes them at the end.
"""

from __future__ import annotations

import contextlib
from typing import Any

from harness.contract import registry
from harness.meters.base import DOMAINS, EnergyComponent, Meter, MeterUnavailable


def _construct(name: str, measurement: dict[str, Any]) -> Meter:
    return registry.load(name, "meter")(measurement)


def _close_all(meters: list[Meter]) -> None:
    for meter in meters:
        with contextlib.suppress(Exception):  # best effort while already failing
            meter.close()


def _select_auto(measurement: dict[str, Any]) -> tuple[list[Meter], dict[str, str]]:
    meters: list[Meter] = []
    skipped: dict[str, str] = {}
    try:
        _auto_into(measurement, meters, skipped)
    except BaseException:
        _close_all(meters)  # a crash (not an unavailability) must not leak NVML or threads
        raise
    return meters, skipped


def _auto_into(measurement: dict[str, Any], meters: list[Meter], skipped: dict[str, str]) -> None:
    try:
        meters.append(_construct("nvml", measurement))
    except MeterUnavailable as exc:
        skipped["nvml"] = str(exc)
    try:
        meters.append(_construct("rapl", measurement))
        skipped["codecarbon"] = "not needed: rapl measures cpu/dram"
    except MeterUnavailable as exc:
        skipped["rapl"] = str(exc)
        try:
            meters.append(_construct("codecarbon", measurement))
        except MeterUnavailable as exc2:
            skipped["codecarbon"] = str(exc2)


def select_meters(measurement: dict[str, Any]) -> tuple[list[Meter], dict[str, str]]:
    """Meters for ``measurement["meters"]`` and, per meter not used, why.

    ``["auto"]`` (the default): NVML for GPUs when it works; RAPL for cpu/dram when readable, else
    the codecarbon estimate; unavailable ones are skipped with their one-line reason, and the list
    may be empty when nothing can measure here. An explicit list constructs exactly those meters:
    one that is unavailable raises MeterUnavailable (after closing those already built), two meters
    on one domain or "auto" mixed with names raise ValueError, an unknown name UnknownNameError.
    """
    names = list(measurement.get("meters") or ["auto"])
    if "auto" in names:
        if len(names) > 1:
            raise ValueError(f"meters: 'auto' cannot be combined with other meters ({names})")
        return _select_auto(measurement)
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
            meters.append(_construct(name, measurement))
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
