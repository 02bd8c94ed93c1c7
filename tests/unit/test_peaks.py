"""Device peak table and MFU / MBU (harness.hardware.peaks)."""

from __future__ import annotations

import pytest

from harness.hardware.peaks import (
    BYTES_PER_ELEMENT,
    NO_PEAK,
    PEAKS,
    device_peaks,
    peak_for,
    utilisation,
)

# NVML names as the driver reports them -> the table row they must match.
NVML_NAMES = {
    "NVIDIA H100 80GB HBM3": "H100 SXM",
    "NVIDIA H100 PCIe": "H100 PCIe",
    "NVIDIA H100 NVL": "H100 NVL",
    "NVIDIA H200": "H200 SXM",
    "NVIDIA A100-SXM4-40GB": "A100 SXM4 40GB",
    "NVIDIA A100-SXM4-80GB": "A100 SXM4 80GB",
    "NVIDIA A100-PCIE-40GB": "A100 PCIe 40GB",
    "NVIDIA A100 80GB PCIe": "A100 PCIe 80GB",
    "NVIDIA A800-SXM4-80GB": "A800 SXM4 80GB",
    "NVIDIA L40S": "L40S",
    "NVIDIA L4": "L4",
    "NVIDIA A10": "A10",
    "NVIDIA GeForce RTX 4090": "RTX 4090",
    "NVIDIA GeForce RTX 5090": "RTX 5090",
    "NVIDIA GeForce RTX 3090": "RTX 3090",
}


@pytest.mark.parametrize(("nvml_name", "device"), sorted(NVML_NAMES.items()))
def test_nvml_names_match_their_row(nvml_name, device):
    row = device_peaks(nvml_name)
    assert row is not None and row.device == device
    # Case, spacing and the "NVIDIA " prefix do not matter.
    assert device_peaks("  " + nvml_name.upper().removeprefix("NVIDIA ") + " ") is row


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA H200 NVL",  # different compute from the SXM H200
        "NVIDIA A10G",  # AWS part, not the A10
        "NVIDIA L40",  # not the L40S
        "NVIDIA GeForce RTX 4090 D",  # fewer SMs
        "NVIDIA GeForce RTX 3090 Ti",
        "NVIDIA H100 80GB HBM3 MIG 1g.10gb",  # a MIG instance is a slice of the GPU
        "NVIDIA A100",
        "NVIDIA H100",
        "Intel(R) Xeon(R) Platinum 8480+",
        "",
    ],
)
def test_near_misses_and_cpus_have_no_peak(name):
    assert device_peaks(name) is None
    assert peak_for(name, "bf16") is None


def test_h100_sxm_and_pcie_are_not_confused():
    sxm = peak_for("NVIDIA H100 80GB HBM3", "bf16")
    pcie = peak_for("NVIDIA H100 PCIe", "bf16")
    assert sxm.flops_per_s == pytest.approx(989.4e12)
    assert sxm.memory_bw_bytes_per_s == pytest.approx(3.35e12)
    assert pcie.flops_per_s == pytest.approx(756.5e12)
    assert pcie.memory_bw_bytes_per_s == pytest.approx(2.0e12)


def test_every_row_is_complete_and_dense():
    devices = set()
    for row in PEAKS:
        assert row.device not in devices
        devices.add(row.device)
        assert row.source.startswith("NVIDIA ")
        assert row.memory_bw_bytes_per_s > 1e11
        values = {d: getattr(row, d) for d in BYTES_PER_ELEMENT}
        assert values["fp32"] is not None
        for dtype, value in values.items():
            if value is None:
                assert row.note, f"{row.device}: {dtype} missing without a note"
            else:
                assert 1e12 < value < 3e15  # FLOP/s, dense (no sparsity doubling)
        if row.fp16 is not None and row.bf16 is not None:
            assert row.fp16 == row.bf16
        if row.tf32 is not None:
            assert row.tf32 <= row.fp16
    assert devices >= set(NVML_NAMES.values())


def test_ampere_has_no_fp8():
    peak = peak_for("NVIDIA A100-SXM4-80GB", "fp8")
    assert peak.flops_per_s is None
    assert "FP8" in peak.note
    assert peak.memory_bw_bytes_per_s == pytest.approx(2.039e12)


def test_fp32_uses_the_non_tensor_peak():
    assert peak_for("NVIDIA H100 80GB HBM3", "fp32").flops_per_s == pytest.approx(66.9e12)
    assert peak_for("NVIDIA H100 80GB HBM3", "tf32").flops_per_s == pytest.approx(494.7e12)
    assert peak_for("NVIDIA A100-SXM4-40GB", "fp32").flops_per_s == pytest.approx(19.5e12)


def test_unknown_precision_has_no_flops_but_keeps_bandwidth():
    peak = peak_for("NVIDIA L4", "q4_k_m")
    assert peak.flops_per_s is None
    assert peak.memory_bw_bytes_per_s == pytest.approx(300e9)


def test_utilisation_single_gpu_hand_computed():
    # 1e9 FLOP/token x 1000 tokens / 1 s = 1e12 FLOP/s on an H100 SXM at bf16 (989.4 TFLOP/s).
    # 1e9 params x 2 bytes x 100 decode steps / 1 s = 2e11 B/s of 3.35e12 B/s.
    u = utilisation(1e9, 200, 800, 1.0, 10**9, "bf16", 100, ["NVIDIA H100 80GB HBM3"])
    assert u["mfu"] == pytest.approx(1e12 / 989.4e12)
    assert u["mbu"] == pytest.approx(2e11 / 3.35e12)
    assert u["peak_flops_per_s"] == pytest.approx(989.4e12)
    assert u["peak_memory_bw_bytes_per_s"] == pytest.approx(3.35e12)
    assert "H100" in u["peak_source"] and "989.4" in u["peak_source"]


def test_utilisation_fp32_uses_four_bytes_per_param():
    u = utilisation(2e9, 10, 10, 2.0, 10**9, "fp32", 10, ["NVIDIA A10"])
    assert u["mfu"] == pytest.approx(2e9 * 20 / 2.0 / 31.2e12)
    assert u["mbu"] == pytest.approx(4e9 * 10 / 2.0 / 600e9)


def test_utilisation_multi_gpu_peaks_add_up():
    one = utilisation(1e9, 500, 500, 1.0, 10**9, "fp16", 50, ["NVIDIA L40S"])
    two = utilisation(1e9, 500, 500, 1.0, 10**9, "fp16", 50, ["NVIDIA L40S"] * 2)
    assert two["peak_flops_per_s"] == pytest.approx(2 * 362.05e12)
    assert two["peak_memory_bw_bytes_per_s"] == pytest.approx(2 * 864e9)
    assert two["mfu"] == pytest.approx(one["mfu"] / 2)
    assert two["mbu"] == pytest.approx(one["mbu"] / 2)
    assert two["peak_source"].startswith("2 x NVIDIA L40S datasheet")


def test_utilisation_mixed_devices():
    u = utilisation(1e9, 0, 1000, 1.0, 10**9, "bf16", 10, ["NVIDIA L4", "NVIDIA A10"])
    assert u["peak_flops_per_s"] == pytest.approx(121e12 + 125e12)
    assert " + " in u["peak_source"]


def test_utilisation_cpu_rows_have_no_peak():
    u = utilisation(1e9, 10, 10, 1.0, 10**9, "fp32", 10, [])
    assert u == {
        "mfu": None,
        "mbu": None,
        "peak_flops_per_s": None,
        "peak_memory_bw_bytes_per_s": None,
        "peak_source": NO_PEAK,
        "devices": 0,
        "weight_bytes_per_step": 4e9,  # still reported: what a step reads, peak or not
        "weight_bytes_source": "1000000000 parameters x 4 B (fp32 width)",
    }


def test_utilisation_unknown_gpu_has_no_peak():
    u = utilisation(1e9, 10, 10, 1.0, 10**9, "fp16", 10, ["NVIDIA L4", "NVIDIA T4"])
    assert u["mfu"] is None and u["mbu"] is None and u["peak_flops_per_s"] is None
    assert u["peak_source"].startswith(NO_PEAK) and "NVIDIA T4" in u["peak_source"]


def test_utilisation_missing_dtype_keeps_mbu():
    u = utilisation(1e9, 10, 10, 1.0, 10**9, "fp8", 10, ["NVIDIA A100-SXM4-80GB"])
    assert u["mfu"] is None and u["peak_flops_per_s"] is None
    assert u["mbu"] == pytest.approx(1e9 * 10 / 2.039e12)
    assert "no fp8 FLOP/s peak" in u["peak_source"]


def test_utilisation_missing_inputs():
    u = utilisation(None, 10, 10, 1.0, None, "bf16", 10, ["NVIDIA L4"])
    assert u["mfu"] is None and u["mbu"] is None
    assert u["peak_flops_per_s"] == pytest.approx(121e12)
    zero = utilisation(1e9, 10, 10, 0.0, 10**9, "bf16", 10, ["NVIDIA L4"])
    assert zero["mfu"] is None and zero["mbu"] is None


def test_quantised_weights_are_read_at_their_stored_width():
    from harness.hardware.peaks import utilisation

    common = dict(
        flops_per_token=None,
        tokens_in=0,
        tokens_out=100,
        duration_s=1.0,
        params=1_000_000_000,
        precision="fp16",
        decode_steps=100,
        devices=["NVIDIA H100 80GB HBM3"],
    )
    fp16 = utilisation(**common)["mbu"]
    int8 = utilisation(**common, weight_bytes_per_param=1.0)["mbu"]
    nf4 = utilisation(**common, weight_bytes_per_param=0.5)["mbu"]
    assert int8 == pytest.approx(fp16 / 2) and nf4 == pytest.approx(fp16 / 4)
    assert utilisation(**{**common, "decode_steps": None})["mbu"] is None
