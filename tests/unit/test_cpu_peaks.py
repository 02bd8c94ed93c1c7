"""Measured CPU peaks: the real torch probe (shrunk), its cache per host/threads/precision, and
MFU/MBU against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.hardware import cpu_peaks as cp
from harness.models.weight_bytes import WeightBytes

pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def small_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cp, "GEMM_N", 128)
    monkeypatch.setattr(cp, "COPY_BYTES", 4 * 2**20)


def test_real_probe_is_labelled_measured_and_cached_per_thread_count(tmp_path: Path) -> None:
    calls: list[int] = []

    def counting(torch, threads, precision):
        calls.append(threads)
        return cp.probe_torch(torch, threads, precision)

    first, why = cp.cpu_peaks(1, "fp32", folder=tmp_path, probe=counting)
    assert why == "" and first is not None and not first.cached
    assert first.flops_per_s > 1e6 and first.memory_bw_bytes_per_s > 1e6
    assert first.source.startswith("measured on this host, not a datasheet peak: fp32 GEMM")
    assert "1 thread " in first.source
    again, _ = cp.cpu_peaks(1, "fp32", folder=tmp_path, probe=counting)
    assert again is not None and again.cached and again.flops_per_s == first.flops_per_s
    assert "cached" in again.source and calls == [1]
    cp.cpu_peaks(2, "fp32", folder=tmp_path, probe=counting)  # another thread count: probed
    assert calls == [1, 2]


def test_probe_restores_torchs_thread_count() -> None:
    import torch

    before = torch.get_num_threads()
    cp.probe_torch(torch, 1, "fp32")
    assert torch.get_num_threads() == before


def test_corrupt_cache_is_probed_over_and_failures_give_a_reason(tmp_path: Path) -> None:
    peaks, _ = cp.cpu_peaks(1, "fp32", folder=tmp_path)
    assert peaks is not None
    for f in tmp_path.glob("*.json"):
        f.write_text("{not json")
    again, _ = cp.cpu_peaks(1, "fp32", folder=tmp_path)
    assert again is not None and not again.cached

    def broken(torch, threads, precision):
        raise RuntimeError("no AVX")

    none, why = cp.cpu_peaks(3, "fp32", folder=tmp_path, probe=broken)
    assert none is None and why == "CPU probe failed: RuntimeError: no AVX"
    assert cp.cpu_peaks(1, "int8", folder=tmp_path) == (None, "no CPU probe for precision int8")


def test_utilisation_against_measured_peaks() -> None:
    peaks = cp.CpuPeaks(100e9, 40e9, 1, "fp32", "torch x", "2026-12-05T00:00:00+00:00", False)
    weights = WeightBytes(135e6 * 4, "135M parameters x 4 B")
    out = cp.cpu_utilisation(peaks, 2.7e8, 100, 300, 10.0, weights, 80)
    assert out["mfu"] == pytest.approx(2.7e8 * 400 / 10.0 / 100e9)
    assert out["mbu"] == pytest.approx(135e6 * 4 * 80 / 10.0 / 40e9)
    assert out["peak_source"] == peaks.source
    assert out["weight_bytes_per_step"] == 135e6 * 4 and out["devices"] == 0
    assert cp.cpu_utilisation(peaks, None, 1, 1, 0.0, None, None)["mfu"] is None
