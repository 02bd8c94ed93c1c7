"""Self test of an environment (an image, or the host): ``python -m harness check``.

Reports what this environment can measure: GPUs through the device layer (NVML or AMD SMI, GPU
energy), RAPL readability (CPU/DRAM energy), whether codecarbon is present (the CPU estimate), and
which inference engines import.
The report is JSON on stdout (for ``lembench doctor`` and scripts); human lines go to stderr.

Exit status: 0, or 65 (``ExitCode.BACKEND_UNAVAILABLE``) when a backend named with ``--backend``
cannot be imported: images run ``python -m harness check --backend <theirs>`` as their build-time
self test, so an image whose engine does not import fails to build.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import platform
import sys
import time
from importlib import metadata
from typing import Any

from harness import __version__
from harness.contract.exitcodes import ExitCode
from harness.hardware.environment import in_container


def engines() -> dict[str, tuple[str, ...]]:
    """Backend name -> the modules its engine needs (imported for real by the check), from each
    backend's description (``imports``)."""
    from harness.contract import registry

    return {d.name: d.imports for d in registry.descriptions()}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def gpu_meter_for(vendor: str) -> Any:
    """The built-in GPU meter class reading ``vendor``'s library (``GpuMeter.vendor``), or None."""
    from harness.contract import registry
    from harness.meters.gpu import GpuMeter

    for name in registry.builtin_meters():
        cls = registry.load(name, "meter")
        if isinstance(cls, type) and issubclass(cls, GpuMeter) and cls.vendor == vendor:
            return cls
    return None


def check_gpus() -> dict[str, Any]:
    """GPUs through the device layer: the vendor library that sees them, its driver, and each
    device with the energy method its meter would use (counter, or power polling)."""
    from harness.hardware.gpu import GPUError, GPUNotSupported, get_gpus

    gpus, tried = get_gpus()
    if gpus is None:
        error = "; ".join(f"{vendor}: {why}" for vendor, why in tried.items())
        return {
            "available": False,
            "vendor": None,
            "meter": None,
            "error": error,
            "tried": tried,
            "devices": [],
        }
    try:
        meter = gpu_meter_for(gpus.vendor)
        devices = []
        for g in gpus.gpus:
            try:
                g.energy_counter()
                method = meter.counter_method if meter else None
            except GPUNotSupported:
                method = meter.poll_method if meter else None
            devices.append({"index": g.index, "name": g.name, "uuid": g.uuid, "method": method})
        return {
            "available": True,
            "vendor": gpus.vendor,
            "meter": meter.name if meter else None,
            "error": None,
            "tried": tried,
            "driver": gpus.driver_version,
            "devices": devices,
        }
    except GPUError as exc:
        return {
            "available": False,
            "vendor": gpus.vendor,
            "meter": None,
            "error": _one_line(exc),
            "tried": tried,
            "devices": [],
        }
    finally:
        gpus.close()


def check_rapl() -> dict[str, Any]:
    """RAPL: readable package (and DRAM) counters, as the meter would use them."""
    from harness.meters.base import MeterUnavailable
    from harness.meters.rapl import RaplMeter

    try:
        meter = RaplMeter({})
    except MeterUnavailable as exc:
        return {"readable": False, "error": str(exc), "domains": []}
    except Exception as exc:
        return {"readable": False, "error": _one_line(exc), "domains": []}
    return {
        "readable": True,
        "error": None,
        "domains": list(meter.domains),
        "root": str(meter.root),
    }


def check_codecarbon() -> dict[str, Any]:
    """codecarbon (the CPU/RAM estimate when RAPL is unreadable): present or not (not imported)."""
    present = importlib.util.find_spec("codecarbon") is not None
    return {"present": present, "version": _version("codecarbon") if present else None}


def meter_plan(platform: str | None = None) -> dict[str, Any]:
    """Which meter ``meters: [auto]`` uses here for each domain, with its methods and kind, and
    for each better meter that cannot run here, why and how to enable it.

    Returns ``{"used": {domain: {"meter", "methods", "estimate"}}, "skipped": {meter: reason},
    "hints": [{"meter", "domains", "why", "enable"}]}``. A hint is given for a measuring meter
    of this platform that was skipped although it would measure a domain that is now estimated or
    not measured, and whose hardware is here (``MeterDescription.present_if``) or undetectable."""
    from pathlib import Path

    from harness.contract import registry
    from harness.meters.chain import auto_order, select_meters

    meters, skipped = select_meters({"meters": ["auto"]})
    used: dict[str, dict[str, Any]] = {}
    try:
        for m in meters:
            methods = [x.name for x in m.description.methods]
            estimate = all(x.kind == "estimate" for x in m.description.methods)
            for domain in m.domains:
                used[domain] = {"meter": m.name, "methods": methods, "estimate": estimate}
    finally:
        for m in meters:
            with contextlib.suppress(Exception):
                m.close()
    descriptions = registry.meter_descriptions()
    hints = []
    for name in auto_order(platform):
        d = descriptions[name]
        why = skipped.get(name)
        if (
            why is None
            or why.startswith("not needed")
            or any(x.kind == "estimate" for x in d.methods)
        ):
            continue
        better = [dom for dom in d.domains if dom not in used or used[dom]["estimate"]]
        here = not d.present_if or any(Path(p).exists() for p in d.present_if)
        if better and here:
            hints.append({"meter": name, "domains": better, "why": why, "enable": d.enable_hint})
    return {"used": used, "skipped": skipped, "hints": hints}


def check_backend(name: str, *, force: bool) -> dict[str, Any]:
    """Import the engine modules of backend ``name`` (all of them when ``force``; else only when
    the first one is installed) and, if the harness has a backend module for it, that too.
    ``versions``: the version of each installed distribution the description names."""
    from harness.contract import registry

    registered = name in registry.names("backend")
    description = registry.describe(name) if registered else None
    modules = description.imports if description else ()
    entry: dict[str, Any] = {
        "registered": registered,
        "importable": False,
        "error": None,
        "versions": {},
        "import_s": None,
    }
    if modules and not force and importlib.util.find_spec(modules[0]) is None:
        entry["error"] = f"not installed (no module {modules[0]!r})"
        return entry
    start = time.perf_counter()
    try:
        for module in modules:
            importlib.import_module(module)
        if description is not None:
            versions = {d: _version(d) for d in description.distributions}
            entry["versions"] = {d: v for d, v in versions.items() if v is not None}
        if registered:
            registry.load(name, "backend")
    except Exception as exc:  # ImportError, but also OSError from missing CUDA libraries
        entry["error"] = _one_line(exc)
    else:
        entry["importable"] = True
        if "torch" in modules:
            import torch

            entry["cuda_available"] = bool(torch.cuda.is_available())
            entry["cuda_devices"] = torch.cuda.device_count() if entry["cuda_available"] else 0
    entry["import_s"] = round(time.perf_counter() - start, 2)
    return entry


def report(backends: list[str] | None = None) -> dict[str, Any]:
    """The whole self test. ``backends``: check only these (each imported for real); default:
    every known backend that is installed."""
    from harness.contract import registry

    names = backends or registry.names("backend")
    gpus = check_gpus()
    rapl = check_rapl()
    codecarbon = check_codecarbon()
    checked = {name: check_backend(name, force=bool(backends)) for name in names}
    gpu = None
    if gpus["available"]:
        methods = {d["method"] for d in gpus["devices"]}
        meter = gpu_meter_for(gpus["vendor"])
        # One polled device makes the figure a polled one, as the meter labels it.
        gpu = meter.poll_method if meter.poll_method in methods else meter.counter_method
    cpu = "rapl" if rapl["readable"] else ("estimate_codecarbon" if codecarbon["present"] else None)
    return {
        "harness_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "in_container": in_container(),
        "image_digest": os.environ.get("LEMBENCH_IMAGE_DIGEST"),
        "gpus": gpus,
        "rapl": rapl,
        "codecarbon": codecarbon,
        "backends": checked,
        "measures": {"gpu_energy": gpu, "cpu_energy": cpu},
    }


def human_lines(rep: dict[str, Any]) -> list[str]:
    """The report as short lines for a person."""
    gpus, rapl, cc = rep["gpus"], rep["rapl"], rep["codecarbon"]
    where = "container" if rep["in_container"] else "host"
    lines = [f"lembench harness {rep['harness_version']} (python {rep['python']}, {where})"]
    if gpus["available"]:
        devs = ", ".join(f"{d['index']}: {d['name']} ({d['method']})" for d in gpus["devices"])
        lines.append(f"  GPUs       {gpus['vendor']}, driver {gpus.get('driver')}: {devs}")
    else:
        lines.append(f"  GPUs       no ({gpus['error']})")
    if rapl["readable"]:
        lines.append(f"  RAPL       yes ({', '.join(rapl['domains'])} under {rapl['root']})")
    else:
        lines.append(f"  RAPL       no ({rapl['error']})")
    lines.append(
        f"  codecarbon {'yes ' + str(cc['version']) if cc['present'] else 'no'}"
        " (CPU/RAM estimate when RAPL is unreadable)"
    )
    for name, b in rep["backends"].items():
        if b["importable"]:
            versions = ", ".join(f"{m} {v}" for m, v in b["versions"].items())
            extra = ""
            if "cuda_available" in b:
                extra = (
                    f"; CUDA devices: {b['cuda_devices']}" if b["cuda_available"] else "; no CUDA"
                )
            note = "" if b["registered"] else " (engine only: no lembench backend yet)"
            lines.append(f"  backend    {name}: imports ({versions}{extra}){note}")
        else:
            lines.append(f"  backend    {name}: no ({b['error']})")
    m = rep["measures"]
    cpu = {"rapl": "measured (RAPL)", "estimate_codecarbon": "estimated (codecarbon)"}.get(
        m["cpu_energy"], "none"
    )
    gpu = f"measured ({m['gpu_energy']})" if m["gpu_energy"] else "none"
    lines.append(f"  measures   GPU energy: {gpu}; CPU energy: {cpu}")
    return lines


def main(backends: list[str] | None = None, quiet: bool = False) -> int:
    """Print the report (JSON on stdout, lines on stderr); exit status as in the module doc."""
    import warnings

    from harness.contract import registry

    unknown = [b for b in backends or () if b not in registry.names("backend")]
    if unknown:
        allowed = ", ".join(registry.names("backend"))
        print(f"unknown backend {unknown[0]!r} (allowed: {allowed})", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library import chatter is not part of the report
        rep = report(backends)
    json.dump(rep, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if not quiet:
        for line in human_lines(rep):
            print(line, file=sys.stderr)
    missing = [b for b in backends or () if not rep["backends"][b]["importable"]]
    if missing:
        print(
            f"backend {missing[0]} is unavailable here: {rep['backends'][missing[0]]['error']}",
            file=sys.stderr,
        )
        return ExitCode.BACKEND_UNAVAILABLE
    return ExitCode.OK
