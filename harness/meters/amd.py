"""GPU energy of AMD GPUs through AMD SMI (``harness.hardware.gpu.amd``).

The energy accumulator (``amdsmi_get_energy_count``) where the GPU has one, else socket power
polled and integrated; the mechanics, scope and labels are ``harness.meters.gpu``'s. Written
against amdsmi's documented interface and tested against a fake of it; not yet run on hardware.
"""

from __future__ import annotations

from harness.contract.descriptions import EnergyMethod, MeterDescription
from harness.meters.gpu import GpuMeter


class AmdsmiMeter(GpuMeter):
    """GPU energy of the experiment's AMD GPUs (one ``gpu`` component, per-device values)."""

    name = "amdsmi"
    vendor = "amd"
    counter_method = "amdsmi_counter"
    poll_method = "amdsmi_power_poll"
    description = MeterDescription(
        name="amdsmi",
        summary="AMD GPUs through AMD SMI (amdsmi): energy accumulator, else power polling.",
        methods=(
            EnergyMethod(
                "amdsmi_counter",
                "measured",
                "AMD's energy accumulator (amdsmi_get_energy_count: counts x counter_resolution "
                "uJ, 64-bit with wrap-around undone): end minus start per GPU the experiment "
                "runs on, summed.",
            ),
            EnergyMethod(
                "amdsmi_power_poll",
                "measured",
                "AMD SMI socket power (amdsmi_get_power_info, whole watts; current where reported, "
                "else the driver's average) polled at 10 Hz and integrated over the window "
                "(trapezoids); used where the GPU has no energy counter.",
            ),
        ),
        domains=("gpu",),
        platforms=("linux",),
        enable_hint="install ROCm 6.1+ and the matching amdsmi package (pip install amdsmi), and "
        "add the user to the render and video groups (containers: --device /dev/kfd "
        "--device /dev/dri)",
        present_if=("/dev/kfd", "/sys/module/amdgpu"),
    )
