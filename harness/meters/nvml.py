"""GPU energy of NVIDIA GPUs through NVML (``harness.hardware.gpu.nvidia``).

``nvmlDeviceGetTotalEnergyConsumption`` (mJ, Volta and newer) where the GPU has it, else
``nvmlDeviceGetPowerUsage`` polled and integrated; the mechanics are ``harness.meters.gpu``'s.
"""

from __future__ import annotations

from harness.contract.descriptions import EnergyMethod, MeterDescription
from harness.meters.gpu import COUNTER_UPDATE_PERIOD_S, POLL_INTERVAL_S, GpuMeter

__all__ = ["COUNTER", "COUNTER_UPDATE_PERIOD_S", "POLL", "POLL_INTERVAL_S", "NvmlMeter"]

COUNTER = "nvml_counter"
POLL = "nvml_power_poll"


class NvmlMeter(GpuMeter):
    """GPU energy of the experiment's NVIDIA GPUs (one ``gpu`` component, per-device values)."""

    name = "nvml"
    vendor = "nvidia"
    counter_method = COUNTER
    poll_method = POLL
    description = MeterDescription(
        name="nvml",
        summary="NVIDIA GPUs through NVML (nvidia-ml-py): energy counter, else power polling.",
        methods=(
            EnergyMethod(
                COUNTER,
                "measured",
                "NVIDIA's cumulative energy counter (nvmlDeviceGetTotalEnergyConsumption, mJ, "
                "Volta and newer): counter at window end minus counter at window start, per GPU "
                "the experiment runs on, summed.",
            ),
            EnergyMethod(
                POLL,
                "measured",
                "NVML power readings (nvmlDeviceGetPowerUsage) polled at 10 Hz in a background "
                "thread and integrated over the window (trapezoids); used where the GPU has no "
                "energy counter.",
            ),
        ),
        domains=("gpu",),
        platforms=("linux", "win32"),
        enable_hint="install the NVIDIA driver and nvidia-ml-py (pip install nvidia-ml-py); in "
        "containers run with --gpus (the NVIDIA container toolkit)",
        present_if=("/proc/driver/nvidia/gpus", "/dev/nvidia0"),
    )
