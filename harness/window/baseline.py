"""The idle baseline: what the measured devices draw doing nothing, to subtract from a window.

Measured after the model is loaded (memory resident, GPU idle) and before warmup, with the same
meters as the measured windows, as idle windows in which the harness only sleeps. Idle power per
domain = the windows' energy / their duration.

Sized from the meters, not a fixed length: each idle window lasts ``2 x`` the slowest meter's update
period (at least ``MIN_WINDOW_S``), so every window spans whole meter updates; windows repeat until
the mean idle power is known to ``TARGET_REL_SE`` (standard error of the mean of the windows'
powers / that mean) after at least ``MIN_WINDOWS`` windows, or until ``duration_s`` (the suite's
``idle_baseline_s``, now the cap) is spent. A quiet meter therefore stops after a few seconds and a
noisy one takes the whole cap; the baseline records how many windows it took and the precision
reached (``windows``, ``power_rel_se``, ``target_met``).

Baselines are cached per machine, boot and device set, so a suite of many load groups does not pay
for one each time: a JSON file per key under ``$LEMBENCH_CACHE_DIR/baselines/`` (else
``~/.cache/lembench/baselines/``), keyed by the hostname, the boot (the kernel's boot id: idle
power after a reboot, driver reload or new power settings is another machine's) and, per meter,
its name and devices (NVML GPU UUIDs, RAPL zones). A cached baseline is reused only when it is at
most ``cache_s`` old, was measured over at least (about) the requested duration or reached the
noise target, and the host's CPU load now (measured before the baseline,
``harness.window.host_load``) is within ``LOAD_TOLERANCE_PCT`` of the load it was measured under:
an idle power taken while another process was busy (or quiet) would be subtracted from a window
under other conditions and give a wrong, even negative, net energy. Without a load figure nothing
is reused. An old, unreadable or foreign cache file is simply measured over, never an error.
``cache_s == 0`` never reuses (but still records).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.contract.io import write_json_atomic
from harness.meters.base import EnergyComponent, Meter
from harness.meters.chain import combine

log = logging.getLogger("harness")

CACHE_VERSION = 3  # 2: keyed by boot, with the load measured under; 3: noise-sized windows
#: A cached baseline is reused only when the CPU load now is within this many percentage points
#: of the load it was measured under.
LOAD_TOLERANCE_PCT = 10.0
#: A cached baseline measured over less than this share of the requested duration is not reused
#: (unless it reached the noise target).
_MIN_DURATION_SHARE = 0.95
#: Idle windows: at least this many, each at least this long, until the mean power's relative
#: standard error is at most TARGET_REL_SE.
MIN_WINDOWS = 3
MIN_WINDOW_S = 0.5
TARGET_REL_SE = 0.01


@dataclass
class Baseline:
    """Idle power of one machine's measured devices (the result's ``energy.baseline``)."""

    power_w: dict[str, float]  # idle power per domain ("gpu", "cpu", "dram")
    devices: list[dict[str, Any]]  # per device: {"id", "domain", "power_w"}
    duration_s: float
    measured_at: str  # ISO 8601, UTC
    cached: bool  # reused from the cache
    method: str  # the meters' methods, e.g. "nvml_counter+rapl"
    is_estimate: bool
    windows: int | None = None  # idle windows measured (None: an older cache entry)
    power_rel_se: float | None = None  # standard error of the mean power / mean (None: 1 window)
    target_met: bool | None = None  # power_rel_se <= TARGET_REL_SE before the duration cap

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_dir() -> Path:
    """Folder of cached baselines (``$LEMBENCH_CACHE_DIR/baselines`` if set)."""
    base = os.environ.get("LEMBENCH_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "lembench"
    return root / "baselines"


def _identity(meter: Meter) -> dict[str, Any]:
    """What makes one meter's baseline valid elsewhere: its name, domains and devices."""
    desc = meter.describe()
    ident: dict[str, Any] = {"name": meter.name, "domains": sorted(meter.domains)}
    if desc.get("devices"):
        ident["devices"] = [str(d.get("uuid") or d.get("index")) for d in desc["devices"]]
    if desc.get("zones"):
        ident["root"] = desc.get("root")
        ident["zones"] = [z["zone"] for z in desc["zones"]]
    return ident


def boot_id() -> str | None:
    """This boot of the machine: the kernel's random boot id (Linux), else the boot time."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        pass
    try:
        import psutil

        return f"boot-time-{psutil.boot_time():.0f}"
    except Exception:
        return None


def cache_key(meters: list[Meter]) -> dict[str, Any]:
    """The cache key of ``meters`` on this host and boot (a JSON-able dict)."""
    return {
        "version": CACHE_VERSION,
        "hostname": socket.gethostname(),
        "boot": boot_id(),
        "meters": sorted((_identity(m) for m in meters), key=lambda i: i["name"]),
    }


def _cache_path(key: dict[str, Any], folder: Path) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return folder / f"{digest}.json"


def _load(
    path: Path,
    key: dict[str, Any],
    duration_s: float,
    cache_s: float,
    now: float,
    load_pct: float | None,
) -> Baseline | None:
    """The cached baseline at ``path`` if it is usable; None otherwise (never raises)."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry.get("key") != key:  # another key hashed alike, or an older layout
            return None
        age = now - float(entry["measured_at_epoch"])
        if not 0 <= age <= cache_s:
            return None
        then = entry.get("load_pct")
        if load_pct is None or then is None or abs(float(then) - load_pct) > LOAD_TOLERANCE_PCT:
            log.info("not reusing baseline %s: load now %s%%, then %s%%", path, load_pct, then)
            return None
        data = dict(entry["baseline"])
        short = float(data["duration_s"]) < _MIN_DURATION_SHARE * duration_s
        if short and not data.get("target_met"):
            return None
        baseline = Baseline(
            power_w={str(k): float(v) for k, v in data["power_w"].items()},
            devices=[dict(d) for d in data["devices"]],
            duration_s=float(data["duration_s"]),
            measured_at=str(data["measured_at"]),
            cached=True,
            method=str(data["method"]),
            is_estimate=bool(data["is_estimate"]),
            windows=data.get("windows"),
            power_rel_se=data.get("power_rel_se"),
            target_met=data.get("target_met"),
        )
    except FileNotFoundError:
        return None
    except Exception as exc:  # unreadable or corrupt: measure again
        log.info("ignoring baseline cache %s: %s", path, exc)
        return None
    return baseline


def _store(
    path: Path, key: dict[str, Any], baseline: Baseline, epoch: float, load_pct: float | None
) -> None:
    entry = {
        "key": key,
        "measured_at_epoch": epoch,
        "load_pct": load_pct,
        "baseline": baseline.to_dict(),
    }
    try:
        write_json_atomic(path, entry)
    except (OSError, ValueError) as exc:  # a read-only home must not fail the run
        log.info("could not write baseline cache %s: %s", path, exc)


def window_length_s(meters: list[Meter]) -> float:
    """One idle window: twice the slowest meter's update period, at least ``MIN_WINDOW_S``."""
    periods = [m.update_period_s for m in meters if m.update_period_s]
    return max([MIN_WINDOW_S, *(2 * p for p in periods)])


def _rel_se(powers: list[float]) -> float | None:
    """Standard error of the mean of ``powers`` / their mean (None with fewer than 2)."""
    if len(powers) < 2:
        return None
    mean = sum(powers) / len(powers)
    if mean <= 0:
        return 0.0 if all(p == 0 for p in powers) else None
    var = sum((p - mean) ** 2 for p in powers) / (len(powers) - 1)
    return (var / len(powers)) ** 0.5 / mean


def measure_baseline(
    meters: list[Meter],
    duration_s: float,
    cache_s: float,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    *,
    wall: Callable[[], float] = time.time,
    folder: Path | None = None,
    load_pct: float | None = None,
) -> Baseline | None:
    """Idle power of ``meters``' domains: a cached baseline, or idle windows sized from the meters'
    update periods and noise (module docstring), for at most ``duration_s``.

    None when ``duration_s`` is 0 or there are no meters. ``clock``/``sleep`` time the idle
    windows, ``wall`` (epoch seconds) dates cache entries; ``folder`` overrides ``cache_dir()``;
    ``load_pct`` is the host's CPU load now (a cached baseline needs a similar one to be reused).
    Meter errors propagate (the caller decides: a ``no_baseline`` warning).
    """
    if duration_s <= 0 or not meters:
        return None
    folder = folder if folder is not None else cache_dir()
    key = cache_key(meters)
    path = _cache_path(key, folder)
    if cache_s > 0:
        cached = _load(path, key, duration_s, cache_s, wall(), load_pct)
        if cached is not None:
            return cached

    epoch = wall()  # the entry is dated from the first window's start (ages conservatively)
    length = min(window_length_s(meters), duration_s)
    elapsed = 0.0
    totals: dict[tuple[str, str, str], float] = {}  # (meter, domain, device id) -> J
    first: dict[str, EnergyComponent] = {}  # per domain, a component (method, estimate flag)
    powers: list[float] = []  # total idle power of each window
    rel_se: float | None = None
    while True:
        with ExitStack() as stack:
            for meter in meters:
                stack.enter_context(meter)
            t0 = clock()
            sleep(length)
            t1 = clock()
        if t1 - t0 <= 0:
            raise RuntimeError(f"idle baseline window has no duration ({t1 - t0} s)")
        elapsed += t1 - t0
        components = [c for m in meters for c in m.components]
        powers.append(sum(c.energy_j for c in components) / (t1 - t0))
        for c in components:
            first.setdefault(c.domain, c)
            for d in c.devices or [{"id": c.meter, "energy_j": c.energy_j}]:
                ident = (c.meter, c.domain, str(d["id"]))
                totals[ident] = totals.get(ident, 0.0) + d["energy_j"]
        rel_se = _rel_se(powers)
        settled = rel_se is not None and rel_se <= TARGET_REL_SE
        if (len(powers) >= MIN_WINDOWS and settled) or elapsed + length > duration_s * 1.0001:
            break
    power: dict[str, float] = {}
    devices: list[dict[str, Any]] = []
    for (_meter, domain, ident), joules in totals.items():
        power[domain] = power.get(domain, 0.0) + joules / elapsed
        devices.append({"id": ident, "domain": domain, "power_w": joules / elapsed})
    energy = combine(list(first.values()))
    baseline = Baseline(
        power_w=power,
        devices=devices,
        duration_s=elapsed,
        measured_at=datetime.fromtimestamp(epoch, UTC).isoformat(),
        cached=False,
        method=energy["method"],
        is_estimate=energy["is_estimate"],
        windows=len(powers),
        power_rel_se=rel_se,
        target_met=bool(
            len(powers) >= MIN_WINDOWS and rel_se is not None and rel_se <= TARGET_REL_SE
        ),
    )
    _store(path, key, baseline, epoch, load_pct)
    return baseline
