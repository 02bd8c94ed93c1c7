"""Device peaks (FLOP/s per dtype, memory bandwidth) and MFU / MBU against them.

The table holds vendor datasheet numbers (NVIDIA datasheets and architecture whitepapers), dense:
datasheets print tensor-core figures "with sparsity" (2:4 structured), which are twice the dense
rate; we store the dense rate. ``fp32`` is plain (non-tensor) FP32: PyTorch does not use TF32 for
matmuls by default (``torch.backends.cuda.matmul.allow_tf32`` is False since 1.12), so an fp32 run
is measured against the FP32 peak; ``tf32`` is there for runs that enable it. On GeForce cards fp16
and bf16 are the rates with FP32 accumulate, which is what PyTorch's GEMMs use (the faster
FP16-accumulate rate is not used by torch). A dtype we could not confirm in a datasheet is None and
the row's note says so: no number here is guessed.

Matching is by the exact NVML device name (``nvmlDeviceGetName``), compared case-insensitively with
the ``NVIDIA `` prefix dropped. Names that differ in memory size or variant (``H100 PCIe`` vs
``H100 80GB HBM3`` (SXM), ``A100-SXM4-40GB`` vs ``A100-SXM4-80GB``) have different peaks; an unknown
name, a MIG instance or a CPU has no peak (None, "no peak known") rather than a near miss.

MFU = achieved FLOP/s / peak FLOP/s, achieved = flops_per_token x (tokens_in + tokens_out) /
duration_s. MBU = (weight bytes per step x decode_steps / duration_s) / peak memory bandwidth: each
decode step reads every weight once at its stored width (``harness.models.weight_bytes``: GGUF
tensor types, AWQ/GPTQ 4-bit + scales, FP8, bitsandbytes; MoE: the active experts), else
parameters x the compute precision's width; KV-cache and activation traffic are not counted, and
the window also contains prefill time, so MBU is a lower bound of the decode phase's bandwidth use.

Tensor and pipeline parallelism: the peak is the per-device peak times the number of devices the
model runs on (``devices``: every GPU of the TP x PP group, ``harness.hardware.parallel``), and
each device reads its share of the weights (weight bytes / devices) per step, so MBU is
(bytes per device x steps / duration) over the per-device bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.models.weight_bytes import WeightBytes

T = 1e12  # tera
G = 1e9  # giga

#: Precision name (as in configs) -> table dtype.
DTYPES = {
    "fp32": "fp32",
    "float32": "fp32",
    "tf32": "tf32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp8": "fp8",
    "float8": "fp8",
    "int8": "int8",
}

#: Bytes per parameter of each table dtype (MBU's weight bytes).
BYTES_PER_ELEMENT = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}

NO_PEAK = "no peak known"


@dataclass(frozen=True)
class DevicePeaks:
    """One row of the table: a device's dense peaks (FLOP/s or OP/s) and memory bandwidth."""

    device: str
    nvml_names: tuple[str, ...]  # exact NVML names (case-insensitive, "NVIDIA " prefix optional)
    fp32: float | None  # plain FP32 (non-tensor)
    tf32: float | None
    fp16: float | None
    bf16: float | None
    fp8: float | None
    int8: float | None
    memory_bw_bytes_per_s: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Peak:
    """A device's peak for one precision. ``flops_per_s`` is None when the table has no number for
    that precision (the row's note says why); the bandwidth is always known."""

    device: str
    precision: str
    flops_per_s: float | None
    memory_bw_bytes_per_s: float
    source: str
    note: str = field(default="")


PEAKS: tuple[DevicePeaks, ...] = (
    DevicePeaks(
        device="H100 SXM",
        nvml_names=("H100 80GB HBM3",),
        fp32=66.9 * T,
        tf32=494.7 * T,
        fp16=989.4 * T,
        bf16=989.4 * T,
        fp8=1978.9 * T,
        int8=1978.9 * T,
        memory_bw_bytes_per_s=3350 * G,
        source=(
            "NVIDIA H100 datasheet (SXM5) and Hopper whitepaper: dense BF16 989.4 TFLOPS, FP32 "
            "66.9, TF32 494.7, FP8/INT8 1978.9; 3.35 TB/s HBM3"
        ),
    ),
    DevicePeaks(
        device="H100 PCIe",
        nvml_names=("H100 PCIe",),
        fp32=51 * T,
        tf32=378 * T,
        fp16=756.5 * T,
        bf16=756.5 * T,
        fp8=1513 * T,
        int8=1513 * T,
        memory_bw_bytes_per_s=2000 * G,
        source=(
            "NVIDIA H100 datasheet (PCIe, 80GB): FP32 51 TFLOPS; with sparsity TF32 756, FP16/BF16 "
            "1,513, FP8/INT8 3,026 (dense = half); 2 TB/s HBM2e"
        ),
    ),
    DevicePeaks(
        device="H100 NVL",
        nvml_names=("H100 NVL",),
        fp32=60 * T,
        tf32=417.5 * T,
        fp16=835.5 * T,
        bf16=835.5 * T,
        fp8=1670.5 * T,
        int8=1670.5 * T,
        memory_bw_bytes_per_s=3900 * G,
        source=(
            "NVIDIA H100 datasheet (H100 NVL, 94GB, per GPU): FP32 60 TFLOPS; with sparsity TF32 "
            "835, FP16/BF16 1,671, FP8/INT8 3,341 (dense = half); 3.9 TB/s HBM3"
        ),
        note="older H100 NVL datasheets give the figures of the NVLink-bridged pair (2x)",
    ),
    DevicePeaks(
        device="H200 SXM",
        nvml_names=("H200",),
        fp32=66.9 * T,
        tf32=494.7 * T,
        fp16=989.4 * T,
        bf16=989.4 * T,
        fp8=1978.9 * T,
        int8=1978.9 * T,
        memory_bw_bytes_per_s=4800 * G,
        source=(
            "NVIDIA H200 datasheet (SXM): FP32 67 TFLOPS; with sparsity TF32 989, FP16/BF16 1,979, "
            "FP8/INT8 3,958 (dense = half; same GH100 SXM compute as H100 SXM, whitepaper "
            "precision); 4.8 TB/s HBM3e"
        ),
        note="H200 NVL (NVML 'NVIDIA H200 NVL') has lower compute and is not matched",
    ),
    DevicePeaks(
        device="A100 SXM4 40GB",
        nvml_names=("A100-SXM4-40GB",),
        fp32=19.5 * T,
        tf32=156 * T,
        fp16=312 * T,
        bf16=312 * T,
        fp8=None,
        int8=624 * T,
        memory_bw_bytes_per_s=1555 * G,
        source=(
            "NVIDIA A100 datasheet: FP32 19.5 TFLOPS, TF32 156, FP16/BF16 312, INT8 624 TOPS "
            "(dense); 40GB SXM 1,555 GB/s"
        ),
        note="no FP8 tensor cores (Ampere)",
    ),
    DevicePeaks(
        device="A100 SXM4 80GB",
        nvml_names=("A100-SXM4-80GB",),
        fp32=19.5 * T,
        tf32=156 * T,
        fp16=312 * T,
        bf16=312 * T,
        fp8=None,
        int8=624 * T,
        memory_bw_bytes_per_s=2039 * G,
        source=(
            "NVIDIA A100 datasheet: FP32 19.5 TFLOPS, TF32 156, FP16/BF16 312, INT8 624 TOPS "
            "(dense); 80GB SXM 2,039 GB/s"
        ),
        note="no FP8 tensor cores (Ampere)",
    ),
    DevicePeaks(
        device="A100 PCIe 40GB",
        nvml_names=("A100-PCIE-40GB",),
        fp32=19.5 * T,
        tf32=156 * T,
        fp16=312 * T,
        bf16=312 * T,
        fp8=None,
        int8=624 * T,
        memory_bw_bytes_per_s=1555 * G,
        source=(
            "NVIDIA A100 datasheet: FP32 19.5 TFLOPS, TF32 156, FP16/BF16 312, INT8 624 TOPS "
            "(dense); 40GB PCIe 1,555 GB/s"
        ),
        note=(
            "no FP8 tensor cores (Ampere); the PCIe card's 250 W limit may keep it below these "
            "peaks"
        ),
    ),
    DevicePeaks(
        device="A100 PCIe 80GB",
        nvml_names=("A100 80GB PCIe",),
        fp32=19.5 * T,
        tf32=156 * T,
        fp16=312 * T,
        bf16=312 * T,
        fp8=None,
        int8=624 * T,
        memory_bw_bytes_per_s=1935 * G,
        source=(
            "NVIDIA A100 datasheet: FP32 19.5 TFLOPS, TF32 156, FP16/BF16 312, INT8 624 TOPS "
            "(dense); 80GB PCIe 1,935 GB/s"
        ),
        note=(
            "no FP8 tensor cores (Ampere); the PCIe card's 300 W limit may keep it below these "
            "peaks"
        ),
    ),
    DevicePeaks(
        device="A800 SXM4 80GB",
        nvml_names=("A800-SXM4-80GB",),
        fp32=19.5 * T,
        tf32=156 * T,
        fp16=312 * T,
        bf16=312 * T,
        fp8=None,
        int8=624 * T,
        memory_bw_bytes_per_s=2039 * G,
        source=(
            "NVIDIA A800 datasheet (80GB SXM): compute as A100, FP32 19.5 TFLOPS, TF32 156, "
            "FP16/BF16 312, INT8 624 TOPS (dense); 2,039 GB/s"
        ),
        note=(
            "no FP8 tensor cores (Ampere); NVLink reduced to 400 GB/s (does not affect single-GPU "
            "peaks)"
        ),
    ),
    DevicePeaks(
        device="L40S",
        nvml_names=("L40S",),
        fp32=91.6 * T,
        tf32=183 * T,
        fp16=362.05 * T,
        bf16=362.05 * T,
        fp8=733 * T,
        int8=733 * T,
        memory_bw_bytes_per_s=864 * G,
        source=(
            "NVIDIA L40S datasheet: FP32 91.6 TFLOPS, TF32 183, FP16/BF16 362.05, FP8 733, INT8 733"
            " TOPS (dense); 864 GB/s GDDR6"
        ),
    ),
    DevicePeaks(
        device="L4",
        nvml_names=("L4",),
        fp32=30.3 * T,
        tf32=60 * T,
        fp16=121 * T,
        bf16=121 * T,
        fp8=242.5 * T,
        int8=242.5 * T,
        memory_bw_bytes_per_s=300 * G,
        source=(
            "NVIDIA L4 datasheet: FP32 30.3 TFLOPS; with sparsity TF32 120, FP16/BF16 242, FP8/INT8"
            " 485 (dense = half, per the datasheet's footnote); 300 GB/s GDDR6"
        ),
    ),
    DevicePeaks(
        device="A10",
        nvml_names=("A10",),
        fp32=31.2 * T,
        tf32=62.5 * T,
        fp16=125 * T,
        bf16=125 * T,
        fp8=None,
        int8=250 * T,
        memory_bw_bytes_per_s=600 * G,
        source=(
            "NVIDIA A10 datasheet: FP32 31.2 TFLOPS, TF32 62.5, FP16/BF16 125, INT8 250 TOPS "
            "(dense); 600 GB/s GDDR6"
        ),
        note=(
            "no FP8 tensor cores (Ampere); AWS A10G (NVML 'NVIDIA A10G') is a different part, not "
            "matched"
        ),
    ),
    DevicePeaks(
        device="RTX 4090",
        nvml_names=("GeForce RTX 4090",),
        fp32=82.6 * T,
        tf32=82.6 * T,
        fp16=165.2 * T,
        bf16=165.2 * T,
        fp8=330.3 * T,
        int8=660.6 * T,
        memory_bw_bytes_per_s=1008 * G,
        source=(
            "NVIDIA Ada Lovelace architecture whitepaper (RTX 4090): FP32 82.6 TFLOPS, TF32 82.6, "
            "FP16/BF16 165.2 and FP8 330.3 with FP32 accumulate, INT8 660.6 TOPS (dense); 1,008 "
            "GB/s"
        ),
        note=(
            "FP16 and FP8 with FP16 accumulate run at twice these rates; torch accumulates in FP32"
        ),
    ),
    DevicePeaks(
        device="RTX 5090",
        nvml_names=("GeForce RTX 5090",),
        fp32=104.8 * T,
        tf32=None,
        fp16=None,
        bf16=None,
        fp8=None,
        int8=None,
        memory_bw_bytes_per_s=1792 * G,
        source=(
            "NVIDIA RTX Blackwell (GeForce RTX 5090) specifications: FP32 104.8 TFLOPS; 1,792 GB/s "
            "GDDR7"
        ),
        note="tensor-core rates with FP32 accumulate not confirmed from a datasheet: left out",
    ),
    DevicePeaks(
        device="RTX 3090",
        nvml_names=("GeForce RTX 3090",),
        fp32=35.6 * T,
        tf32=35.6 * T,
        fp16=71 * T,
        bf16=71 * T,
        fp8=None,
        int8=284 * T,
        memory_bw_bytes_per_s=936 * G,
        source=(
            "NVIDIA Ampere GA102 whitepaper (RTX 3090): FP32 35.6 TFLOPS, TF32 35.6, FP16/BF16 71 "
            "with FP32 accumulate, INT8 284 TOPS (dense); 936 GB/s GDDR6X"
        ),
        note=(
            "no FP8 tensor cores (Ampere); FP16 with FP16 accumulate runs at 142 TFLOPS; torch "
            "accumulates in FP32"
        ),
    ),
)


def _normalise(name: str) -> str:
    name = " ".join(name.strip().lower().split())
    return name.removeprefix("nvidia ")


_BY_NAME: dict[str, DevicePeaks] = {}
for _row in PEAKS:
    for _alias in (*_row.nvml_names, _row.device):
        _BY_NAME[_normalise(_alias)] = _row


def device_peaks(device_name: str) -> DevicePeaks | None:
    """The table row of an NVML device name (or a row's own name), None when unknown."""
    return _BY_NAME.get(_normalise(device_name))


def peak_for(device_name: str, precision: str) -> Peak | None:
    """The peak of ``device_name`` (an NVML name) at ``precision``; None when the device is not in
    the table (CPUs, MIG instances, unknown GPUs). ``flops_per_s`` is None when the table has no
    figure for that precision (e.g. FP8 on Ampere)."""
    row = device_peaks(device_name)
    if row is None:
        return None
    dtype = DTYPES.get(precision.lower())
    flops = getattr(row, dtype) if dtype is not None else None
    return Peak(row.device, precision, flops, row.memory_bw_bytes_per_s, row.source, row.note)


def _sources(rows: list[DevicePeaks]) -> str:
    """'2 x <source>' per distinct row, in first-seen order, joined by ' + '."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.source] = counts.get(row.source, 0) + 1
    return " + ".join(s if n == 1 else f"{n} x {s}" for s, n in counts.items())


def utilisation(
    flops_per_token: float | None,
    tokens_in: int,
    tokens_out: int,
    duration_s: float,
    params: int | None,
    precision: str,
    decode_steps: int | None,
    devices: list[str],
    weight_bytes_per_param: float | None = None,
    weight_bytes: WeightBytes | None = None,
) -> dict[str, Any]:
    """MFU and MBU of one window over the GPUs ``devices`` (NVML names; [] for a CPU run).

    Returns {"mfu", "mbu", "peak_flops_per_s", "peak_memory_bw_bytes_per_s", "peak_source",
    "devices", "weight_bytes_per_step", "weight_bytes_source"}; the numbers are None with
    peak_source "no peak known" when there are no devices or one is not in the table. A known
    device without a FLOP/s figure for ``precision`` still gets its bandwidth (and MBU);
    peak_source then says which figure is missing. Peaks add up over the devices.
    ``weight_bytes`` (stored weight bytes per decode step) wins over ``params`` x width, where
    width is ``weight_bytes_per_param`` or the precision's element size.
    """
    dtype = DTYPES.get(precision.lower())
    width = weight_bytes_per_param or (BYTES_PER_ELEMENT.get(dtype) if dtype else None)
    if weight_bytes is None and params is not None and width is not None:
        weight_bytes = WeightBytes(
            params * width, f"{params} parameters x {width:g} B ({precision} width)"
        )
    out: dict[str, Any] = {
        "mfu": None,
        "mbu": None,
        "peak_flops_per_s": None,
        "peak_memory_bw_bytes_per_s": None,
        "peak_source": NO_PEAK,
        "devices": len(devices),
        "weight_bytes_per_step": None if weight_bytes is None else weight_bytes.per_step,
        "weight_bytes_source": None if weight_bytes is None else weight_bytes.source,
    }
    rows = [device_peaks(name) for name in devices]
    if not rows:
        return out
    if any(row is None for row in rows):
        unknown = sorted({n for n, r in zip(devices, rows, strict=True) if r is None})
        out["peak_source"] = f"{NO_PEAK} ({', '.join(unknown)})"
        return out
    known = [row for row in rows if row is not None]
    per_device = [getattr(row, dtype) if dtype else None for row in known]
    peak_flops = None if any(f is None for f in per_device) else sum(per_device)
    peak_bw = sum(row.memory_bw_bytes_per_s for row in known)
    source = _sources(known)
    if peak_flops is None:
        source += f"; no {precision} FLOP/s peak in the table"
    out.update(peak_flops_per_s=peak_flops, peak_memory_bw_bytes_per_s=peak_bw, peak_source=source)
    if duration_s <= 0:
        return out
    if peak_flops and flops_per_token is not None:
        out["mfu"] = flops_per_token * (tokens_in + tokens_out) / duration_s / peak_flops
    if weight_bytes is not None and decode_steps is not None:
        # Each of the n devices reads its 1/n of the weights per step against its own bandwidth:
        # (bytes / n) x steps / duration / (peak_bw / n), i.e. the sum over the devices.
        out["mbu"] = weight_bytes.per_step * decode_steps / duration_s / peak_bw
    return out
