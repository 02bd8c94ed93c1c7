"""CPU and RAM energy *estimates* from codecarbon, for machines without readable RAPL counters.

codecarbon (3.x) without RAPL estimates, it does not measure (``tracking_mode="machine"``):

- CPU: ``P = TDP x (0.1 + 0.9 x load^3)`` where load is the machine-wide CPU busy fraction from
  psutil over the window (sampled each second and at the window's end). TDP comes from codecarbon's
  ``cpu_power.csv`` when the CPU model string matches, else 4 W per logical CPU, else 85 W.
- RAM: a constant per machine: 5 W per DIMM on x86 (1.5 W on ARM), the DIMM count guessed from the
  total RAM size (e.g. 24 GB -> 4 DIMMs -> 20 W); it does not depend on load.

So both components carry ``is_estimate: True`` and ``method: estimate_codecarbon``, with the model
(CPU model string, TDP and its source, RAM size and power) in ``details`` to explain the number.
Where codecarbon finds RAPL itself it reads it, but the figure stays labelled an estimate.
codecarbon 2.x had another model (CPU: a constant TDP x 0.5, 85 W TDP for unknown models; RAM:
3 W per 8 GB), 5x apart on the same machine: compare estimates only at the same version.

One ``OfflineEmissionsTracker`` is built per meter, in a background thread started by the
constructor: its hardware probing (~1.5 s, mostly waiting on subprocesses and threads) then overlaps
the model load instead of adding to it; the first use (a window, ``describe``) waits for it and a
failed setup raises there. Each window
is a codecarbon *task* (``start_task``/``stop_task``), which codecarbon supports repeatedly on one
tracker; ``stop()`` on a tracker cannot be undone. GPUs are never measured here (NVML owns them):
``gpu_ids=[]``, GPU hardware is dropped from the tracker, and only ``cpu_energy``/``ram_energy`` are
read. Nothing is written (``output_methods=[]``) and codecarbon's logger is set to ERROR.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import time
import uuid
from typing import Any

from harness.contract.descriptions import EnergyMethod, MeterDescription
from harness.meters.base import EnergyComponent, Meter, MeterUnavailable

METHOD = "estimate_codecarbon"
_J_PER_KWH = 3.6e6


class CodecarbonMeter(Meter):
    """Estimated ``cpu`` and ``dram`` energy through codecarbon's offline tracker."""

    name = "codecarbon"
    domains = ("cpu", "dram")
    description = MeterDescription(
        name="codecarbon",
        summary="CPU and RAM energy estimated by codecarbon's model, where RAPL is unreadable.",
        methods=(
            EnergyMethod(
                METHOD,
                "estimate",
                "codecarbon's model, not a measurement: CPU power = TDP x (0.1 + 0.9 x load^3) "
                "with a default TDP where the CPU is unknown, RAM power = 5 W per (guessed) DIMM; "
                "shown as an estimate everywhere and never ranked against measurements.",
            ),
        ),
        domains=("cpu", "dram"),
        platforms=("linux", "darwin", "win32"),
        enable_hint="pip install 'lembench[energy]' (codecarbon)",
    )
    #: codecarbon samples the CPU load once a second; its figure exists only at stop()
    #: (read_cumulative stays the base class's None).
    update_period_s = 1.0

    def __init__(self, measurement: dict[str, Any]) -> None:
        """Import codecarbon and start building its tracker in the background; MeterUnavailable
        if codecarbon is not installed."""
        super().__init__(measurement)
        t0 = time.perf_counter()
        try:
            import codecarbon
            from codecarbon import OfflineEmissionsTracker
        except ImportError as exc:
            raise MeterUnavailable(
                "codecarbon is not installed (pip install 'lembench[energy]')"
            ) from exc
        self.timings_s = {"import": time.perf_counter() - t0}
        # Quiet before construction: the tracker logs warnings before it applies log_level.
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self.version = getattr(codecarbon, "__version__", "unknown")
        self.country_iso_code = measurement.get("country_iso_code") or "USA"
        self._task: str | None = None
        self._setup_error: BaseException | None = None
        self._setup = threading.Thread(
            target=self._build, args=(codecarbon, OfflineEmissionsTracker), daemon=True
        )
        self._setup.start()

    def _build(self, codecarbon: Any, tracker_cls: Any) -> None:
        """Build and warm up one tracker (runs in the setup thread; errors kept for _ready)."""
        t1 = time.perf_counter()
        try:
            self._tracker = tracker_cls(**self._options(codecarbon))
            self._hardware = self._detected_hardware()
            self._drop_gpus()
            t2 = time.perf_counter()
            self._model = self._explain()
            # One empty task does codecarbon's lazy setup (geo data, emissions engine) now, so
            # the first measured window does not pay for it; it also proves the tracker works.
            self._tracker.start_task("lembench-warmup")
            if self._tracker.stop_task("lembench-warmup") is None:
                raise RuntimeError("stop_task returned nothing")
            getattr(self._tracker, "_tasks", {}).pop("lembench-warmup", None)
            self.timings_s.update(setup=t2 - t1, warmup=time.perf_counter() - t2)
        except BaseException as exc:  # reported on first use, in the harness's own thread
            self._setup_error = exc

    def _ready(self) -> None:
        """Wait for the setup thread; RuntimeError (one line) when the tracker failed to build."""
        if self._setup.is_alive():
            t0 = time.perf_counter()
            self._setup.join()
            self.timings_s["waited"] = time.perf_counter() - t0
        if self._setup_error is not None:
            raise RuntimeError(
                f"codecarbon tracker failed to initialise: {self._setup_error}"
            ) from self._setup_error

    def _options(self, codecarbon: Any) -> dict[str, Any]:
        """Tracker arguments, keeping only those this codecarbon version knows."""
        # Every option is explicit so a user's ~/.codecarbon.config or CODECARBON_* variables
        # cannot turn on files, HTTP outputs, API calls, GPU tracking or a PUE factor here.
        # The region is left out: CO2 is computed in harness.meters.carbon, and an unknown
        # region would make codecarbon log an error at every window.
        wanted: dict[str, Any] = {
            "country_iso_code": self.country_iso_code,
            "cloud_provider": None,
            "cloud_region": None,
            "output_methods": [],  # 3.3+; older versions: save_to_file=False below
            "save_to_file": False,
            "emissions_endpoint": None,
            "electricitymaps_api_token": None,
            "co2_signal_api_token": None,
            "log_level": "error",
            "gpu_ids": [],
            "tracking_mode": "machine",
            "allow_multiple_runs": True,
            "force_cpu_power": None,
            "force_ram_power": None,
            "force_mode_cpu_load": False,
            "pue": 1.0,
            "project_name": "lembench",
        }
        known = set(inspect.signature(codecarbon.emissions_tracker.BaseEmissionsTracker).parameters)
        known |= set(inspect.signature(codecarbon.OfflineEmissionsTracker).parameters)
        if "output_methods" in known:
            # save_to_* is deprecated (a DeprecationWarning) once output_methods exists.
            known.discard("save_to_file")
        # co2_signal_api_token is the pre-3.x name; passing it to 3.x logs a deprecation warning.
        if "electricitymaps_api_token" in known:
            known.discard("co2_signal_api_token")
        return {k: v for k, v in wanted.items() if k in known}

    def _detected_hardware(self) -> dict[str, Any]:
        getter = getattr(self._tracker, "get_detected_hardware", None)
        if getter is not None:  # 3.x: also runs the (lazy) hardware probe now
            return dict(getter())
        conf = getattr(self._tracker, "_conf", {})  # 2.x probed in the constructor
        keys = ("ram_total_size", "cpu_count", "cpu_physical_count", "cpu_model", "gpu_count")
        return {k: conf.get(k) for k in keys}

    def _drop_gpus(self) -> None:
        # gpu_ids=[] already selects no GPU, but codecarbon would still open NVML and poll it once
        # a second, and its hardware cache maps [] back to "all GPUs" for later trackers.
        hardware = getattr(self._tracker, "_hardware", None)
        if isinstance(hardware, list):
            self._tracker._hardware = [h for h in hardware if type(h).__name__ != "GPU"]

    def _explain(self) -> dict[str, dict[str, Any]]:
        """The estimation model in use, read from the tracker's hardware objects."""
        cpu: dict[str, Any] = {
            "cpu_model": self._hardware.get("cpu_model"),
            "cpu_count": self._hardware.get("cpu_count"),
        }
        ram: dict[str, Any] = {"ram_total_gb": self._hardware.get("ram_total_size")}
        for hw in getattr(self._tracker, "_hardware", []):
            kind = type(hw).__name__
            if kind == "CPU":
                mode = getattr(hw, "_mode", None)
                tdp = getattr(hw, "_tdp", None)
                cpu.update(cpu_estimation=mode, tdp_w=tdp, tdp_source=self._tdp_source(hw))
                cpu["cpu_power_model"] = {
                    "cpu_load": "P = TDP x (0.1 + 0.9 x load^3), load = machine-wide CPU busy "
                    "fraction (psutil), sampled every 1 s and at the window's end",
                    "constant": "P = TDP x 0.5",
                }.get(mode, f"codecarbon mode {mode!r} (reads hardware counters)")
            elif kind == "RAM":
                try:
                    gb = float(hw.machine_memory_GB)
                    cpu_arm = bool(getattr(hw, "is_arm_cpu", False))
                    ram.update(
                        ram_dimms_estimated=hw._estimate_dimm_count(gb),
                        ram_power_w=hw._calculate_ram_power(gb),
                        ram_power_model=f"{1.5 if cpu_arm else 5} W per DIMM, DIMM count "
                        "guessed from total RAM size; independent of load",
                    )
                except Exception:  # model details are informative only
                    ram["ram_power_model"] = "codecarbon RAM model (details unavailable)"
        for part in (cpu, ram):
            part.update(codecarbon_version=self.version, tracking_mode="machine")
        return {"cpu": cpu, "dram": ram}

    @staticmethod
    def _tdp_source(hw: Any) -> str:
        if getattr(hw, "_is_generic_tdp", False):
            return "codecarbon generic constant (CPU model unknown)"
        try:
            from codecarbon.core.cpu import TDP

            matched = TDP.__new__(TDP)._get_cpu_power_from_registry(hw._model)
        except Exception:
            return "unknown"
        if matched:
            return "codecarbon cpu_power.csv match"
        return "codecarbon default: 4 W per logical CPU (model not in cpu_power.csv)"

    def start(self) -> None:
        """Open a codecarbon task for this window."""
        if self._task is not None:
            raise RuntimeError("codecarbon meter already started")
        self._ready()
        self._task = f"lembench-{uuid.uuid4().hex[:12]}"
        t0 = time.perf_counter()
        self._tracker.start_task(self._task)
        self._start_overhead_s = time.perf_counter() - t0

    def stop(self) -> list[EnergyComponent]:
        """Close the task; return estimated ``cpu`` and ``dram`` components."""
        if self._task is None:
            raise RuntimeError("codecarbon meter stopped without start()")
        task, self._task = self._task, None
        t0 = time.perf_counter()
        data = self._tracker.stop_task(task)
        stop_overhead_s = time.perf_counter() - t0
        if data is None:
            raise RuntimeError("codecarbon returned no data for the window")
        # Finished tasks are kept by codecarbon forever; drop ours (a long suite has thousands).
        getattr(self._tracker, "_tasks", {}).pop(task, None)
        duration = float(data.duration)
        out = []
        for domain, kwh in (("cpu", data.cpu_energy), ("dram", data.ram_energy)):
            energy_j = max(0.0, float(kwh) * _J_PER_KWH)  # float noise of cumulative kWh totals
            details = dict(self._model[domain])
            details.update(
                duration_s=duration,
                avg_power_w=energy_j / duration if duration > 0 else None,
                start_overhead_s=self._start_overhead_s,
                stop_overhead_s=stop_overhead_s,
            )
            out.append(
                EnergyComponent(
                    meter=self.name,
                    method=METHOD,
                    domain=domain,
                    is_estimate=True,
                    energy_j=energy_j,
                    details=details,
                )
            )
        return out

    def describe(self) -> dict[str, Any]:
        """codecarbon version, detected hardware, the estimation model and setup timings."""
        self._ready()
        out = super().describe()
        out.update(
            codecarbon_version=self.version,
            country_iso_code=self.country_iso_code,
            hardware=self._hardware,
            model=self._model,
            timings_s=self.timings_s,
        )
        return out

    def close(self) -> None:
        """End an open task; the tracker itself holds no thread between windows."""
        self._setup.join()
        if self._task is not None:
            task, self._task = self._task, None
            with contextlib.suppress(Exception):  # closing after a failure: nothing to report
                self._tracker.stop_task(task)
