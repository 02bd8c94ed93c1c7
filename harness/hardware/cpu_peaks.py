"""Measured CPU peaks (FLOP/s, memory bandwidth) for MFU and MBU of CPU runs.

CPUs have no datasheet row in harness.hardware.peaks (a model string says little about the cores,
SIMD width, clocks and memory channels a process really gets), so a CPU run's peaks are measured
here, once per host, thread count and precision, and labelled as measured, never as datasheet peaks:

- FLOP/s: the best of ``GEMM_REPEATS`` square matmuls of ``GEMM_N`` (``2 n^3`` FLOPs each) in the
  run's precision, with torch on the run's thread count;
- bandwidth: the best of ``COPY_REPEATS`` copies of a ``COPY_BYTES`` buffer (far larger than any
  cache), counted as bytes read plus bytes written (the STREAM "copy" convention).

These are achievable peaks of this library on this host (a GEMM is about the best a CPU does), so a
CPU MFU near 1 means "as fast as a big matmul here", not "as fast as the silicon". The probe takes
about a second and is cached per host identity (hostname, CPU model, the CPUs of the affinity mask),
thread count, precision and torch version in ``$LEMBENCH_CACHE_DIR/peaks/`` (else
``~/.cache/lembench/peaks/``). Without torch nothing is probed (no peak, with the reason).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contract.io import write_json_atomic

if TYPE_CHECKING:
    from harness.models.weight_bytes import WeightBytes

log = logging.getLogger("harness")

PROBE_VERSION = 1
GEMM_N = 1024
GEMM_REPEATS = 8
COPY_BYTES = 256 * 2**20
COPY_REPEATS = 5
#: Precisions probed in their own dtype (others: no measured peak).
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class CpuPeaks:
    """Measured peaks of this host's CPUs at one thread count and precision."""

    flops_per_s: float
    memory_bw_bytes_per_s: float
    threads: int
    precision: str
    library: str  # e.g. "torch 2.13.0"
    measured_at: str  # ISO 8601, UTC
    cached: bool

    @property
    def source(self) -> str:
        """The result's ``flops.peak_source``: says these are measured, how and when."""
        return (
            f"measured on this host, not a datasheet peak: {self.precision} GEMM "
            f"{GEMM_N}x{GEMM_N} {self.flops_per_s / 1e9:.1f} GFLOP/s and stream copy "
            f"{self.memory_bw_bytes_per_s / 1e9:.1f} GB/s with {self.library} on {self.threads} "
            f"thread{'s' if self.threads != 1 else ''} ({self.measured_at[:19]}Z"
            f"{', cached' if self.cached else ''})"
        )


def cache_dir() -> Path:
    """Folder of cached probes (``$LEMBENCH_CACHE_DIR/peaks`` if set)."""
    base = os.environ.get("LEMBENCH_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "lembench"
    return root / "peaks"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def host_identity() -> dict[str, Any]:
    """What makes a probe valid: the host, its CPU model and the CPUs this process may use."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = list(range(os.cpu_count() or 1))
    return {"hostname": socket.gethostname(), "cpu_model": _cpu_model(), "cpus": cpus}


def _key(threads: int, precision: str, library: str) -> dict[str, Any]:
    return {
        "version": PROBE_VERSION,
        "host": host_identity(),
        "threads": threads,
        "precision": precision,
        "library": library,
    }


def _path(key: dict[str, Any], folder: Path) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return folder / f"{digest}.json"


def _best_rate(run: Any, work: float, repeats: int) -> float:
    """``work`` / the fastest of ``repeats`` timed calls of ``run`` (after one untimed call)."""
    run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return work / best


def probe_torch(torch: Any, threads: int, precision: str) -> tuple[float, float]:
    """(GEMM FLOP/s, copy bytes/s) with torch on ``threads`` threads (restored afterwards)."""
    dtype = getattr(torch, TORCH_DTYPES[precision])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            gen = torch.Generator().manual_seed(0)
            a = torch.rand(GEMM_N, GEMM_N, generator=gen).to(dtype)
            b = torch.rand(GEMM_N, GEMM_N, generator=gen).to(dtype)
            out = torch.empty(GEMM_N, GEMM_N, dtype=dtype)
            flops = _best_rate(lambda: torch.mm(a, b, out=out), 2.0 * GEMM_N**3, GEMM_REPEATS)
            src = torch.ones(COPY_BYTES // 4, dtype=torch.float32)
            dst = torch.empty_like(src)
            bandwidth = _best_rate(lambda: dst.copy_(src), 2.0 * COPY_BYTES, COPY_REPEATS)
    finally:
        torch.set_num_threads(before)
    return flops, bandwidth


def cpu_peaks(
    threads: int, precision: str, *, folder: Path | None = None, probe: Any = None
) -> tuple[CpuPeaks | None, str]:
    """Measured peaks for ``threads`` and ``precision`` (cached, see the module docstring) and,
    when None, why. ``probe(torch, threads, precision)`` replaces ``probe_torch`` (tests)."""
    if precision not in TORCH_DTYPES:
        return None, f"no CPU probe for precision {precision}"
    if importlib.util.find_spec("torch") is None:
        return None, "no CPU probe here (needs torch)"
    import torch

    library = f"torch {torch.__version__.split('+')[0]}"
    folder = folder if folder is not None else cache_dir()
    key = _key(threads, precision, library)
    path = _path(key, folder)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry.get("key") == key:
            return CpuPeaks(**{**entry["peaks"], "cached": True}), ""
    except FileNotFoundError:
        pass
    except Exception as exc:  # corrupt or foreign: probe again
        log.info("ignoring CPU peak cache %s: %s", path, exc)
    try:
        flops, bandwidth = (probe or probe_torch)(torch, threads, precision)
    except Exception as exc:  # a probe that cannot run leaves MFU/MBU null, never fails a run
        return None, f"CPU probe failed: {type(exc).__name__}: {exc}"
    peaks = CpuPeaks(
        flops_per_s=flops,
        memory_bw_bytes_per_s=bandwidth,
        threads=threads,
        precision=precision,
        library=library,
        measured_at=datetime.now(UTC).isoformat(),
        cached=False,
    )
    try:
        write_json_atomic(path, {"key": key, "peaks": asdict(peaks)})
    except (OSError, ValueError) as exc:  # a read-only home must not fail the run
        log.info("could not write CPU peak cache %s: %s", path, exc)
    return peaks, ""


def cpu_utilisation(
    peaks: CpuPeaks,
    flops_per_token: float | None,
    tokens_in: int,
    tokens_out: int,
    duration_s: float,
    weight_bytes: WeightBytes | None,
    decode_steps: int | None,
) -> dict[str, Any]:
    """MFU and MBU of one CPU window against measured ``peaks``, with the same definitions and
    result fields as harness.hardware.peaks.utilisation (``weight_bytes``: stored weight bytes
    per decode step, None when unknown: MBU is then left out)."""
    out: dict[str, Any] = {
        "mfu": None,
        "mbu": None,
        "peak_flops_per_s": peaks.flops_per_s,
        "peak_memory_bw_bytes_per_s": peaks.memory_bw_bytes_per_s,
        "peak_source": peaks.source,
        "devices": 0,
        "weight_bytes_per_step": None if weight_bytes is None else weight_bytes.per_step,
        "weight_bytes_source": None if weight_bytes is None else weight_bytes.source,
    }
    if duration_s <= 0:
        return out
    if flops_per_token is not None:
        out["mfu"] = flops_per_token * (tokens_in + tokens_out) / duration_s / peaks.flops_per_s
    if weight_bytes is not None and decode_steps is not None:
        out["mbu"] = weight_bytes.per_step * decode_steps / duration_s / peaks.memory_bw_bytes_per_s
    return out
