"""Mixed meters are not an estimate: a GPU host without readable RAPL (fake NVML for the GPU, the
real codecarbon model for CPU and DRAM) is ranked on its measured GPU energy, with the
whole-system figure (measured + estimated) shown beside it, labelled an estimate."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from harness.contract import registry
from harness.contract.exitcodes import ExitCode
from harness.contract.io import RESULTS_DIR
from harness.contract.results import validation_problem
from harness.contract.scope import energy_scope, scope_metrics
from harness.meters.base import EnergyComponent
from harness.protocol import run
from lembench.advice import data as advice_data
from lembench.advice.estimate import Assumptions, project_one
from lembench.advice.render import _j_cell
from lembench.report.data import collect
from lembench.report.pages import row_html
from lembench.report.table import build_rows
from lembench.store import ResultStore
from tests.fakes.fake_pynvml import FakeGpu, FakePynvml
from tests.helpers.plugins import register_backends
from tests.unit import test_protocol as protocol

pytest.importorskip("codecarbon")

GPU_W = 100.0


class _GpuCounter:
    """A GPU energy counter (mJ) drawing a constant ``GPU_W`` from its creation on: what the fake
    NVML device returns from nvmlDeviceGetTotalEnergyConsumption (it reads ``int(energy_mj)``)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __int__(self) -> int:
        return int((time.perf_counter() - self.t0) * GPU_W * 1000)


@pytest.fixture
def mixed_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """One GPU behind the fake NVML, no powercap: auto picks NVML (gpu) + codecarbon (cpu, dram).
    The engine is the fake 'echo' backend of the protocol tests."""
    register_backends(monkeypatch, {"echo": "tests.helpers.echo_backend:EchoBackend"})
    monkeypatch.setitem(sys.modules, "pynvml", FakePynvml([FakeGpu(energy_mj=_GpuCounter())]))
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setenv("LEMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    yield
    registry.reset()


def _mixed_run(tmp_path: Path) -> list[dict]:
    io = tmp_path / "io"
    configs = [protocol._config(1), protocol._config(2)]
    request = protocol._request(io, configs)
    doc = json.loads(request.read_text())
    doc["measurement"]["meters"] = ["auto"]
    request.write_text(json.dumps(doc))
    assert run(request) == ExitCode.OK
    return [json.loads(p.read_text()) for p in sorted((io / RESULTS_DIR).glob("*.json"))]


def test_mixed_result_ranks_its_measured_gpu_part(mixed_host: None, tmp_path: Path) -> None:
    results = _mixed_run(tmp_path)
    store = ResultStore(tmp_path / "results")
    for r in results:
        assert validation_problem(r) is None
        energy, m = r["energy"], r["metrics"]
        assert energy["is_estimate"] is True  # the whole system includes codecarbon's model
        assert energy["scope"] == {
            "ranked": "measured",
            "measured_domains": ["gpu"],
            "measured_method": "nvml_counter",
            "estimated_domains": ["cpu", "dram"],
            "estimated_method": "estimate_codecarbon",
        }
        assert m["energy_measured_j"] == pytest.approx(m["energy_gpu_j"])
        assert m["energy_gpu_j"] > 0
        assert m["j_per_output_token_measured"] == pytest.approx(
            m["energy_gpu_j"] / m["tokens_out"]
        )
        assert m["energy_estimated_j"] == pytest.approx(m["energy_cpu_j"] + m["energy_dram_j"])
        assert m["j_per_output_token"] > m["j_per_output_token_measured"]
        (warning,) = [w for w in r["warnings"] if w["code"] == "estimate_used"]
        assert "ranked" in warning["message"] and "gpu" in warning["message"]
        store.store(r)

    # The report ranks both experiments as measured, on the GPU figure; the whole system beside.
    collected = collect(tmp_path / "results")
    rows = build_rows(collected)
    assert [row.energy_class for row in rows] == ["measured", "measured"]
    assert [row.rank for row in rows] == [1, 2]
    by_id = {r["experiment_id"]: r["metrics"] for r in results}
    for row in rows:
        m = by_id[row.exp.experiment_id]
        assert row.stat("j_per_output_token").mean == pytest.approx(
            m["j_per_output_token_measured"]
        )
        assert row.stat("j_per_output_token_system").mean == pytest.approx(m["j_per_output_token"])
        assert row.energy_method == "nvml_counter"
        html = str(row_html(row))
        assert "(ranked); whole system nvml_counter+estimate_codecarbon" in html

    # advise / estimate: measured experiments (not set aside), the whole system shown beside.
    loaded = advice_data.load(tmp_path / "results")
    for e in loaded.experiments:
        assert e.is_estimate is False and e.system_is_estimate is True
        m = by_id[e.experiment_id]
        assert e.mean("j_per_output_token") == pytest.approx(m["j_per_output_token_measured"])
        assert e.mean("j_per_request") == pytest.approx(m["energy_measured_j"] / 4)
        cell = Console(record=True, width=200)
        cell.print(_j_cell(e))
        assert "whole system" in cell.export_text()
        projection = project_one(e, Assumptions(requests_per_month=1000))
        assert projection is not None


def test_all_estimated_stays_an_estimate_and_all_measured_is_unchanged() -> None:
    est = [
        EnergyComponent("codecarbon", "estimate_codecarbon", "cpu", True, 30.0),
        EnergyComponent("codecarbon", "estimate_codecarbon", "dram", True, 5.0),
    ]
    scope = energy_scope(est)
    assert scope.ranked == "estimate" and scope.measured_j is None and scope.estimated_j == 35.0
    rapl = [
        EnergyComponent("rapl", "rapl", "dram", False, 5.0),
        EnergyComponent("rapl", "rapl", "cpu", False, 30.0),
    ]
    scope = energy_scope(rapl)
    assert scope.ranked == "measured" and scope.measured_domains == ("cpu", "dram")
    metrics = scope_metrics(scope, 7, 2.0, {"cpu": 5.0, "dram": 1.0, "gpu": 50.0})
    assert metrics["energy_measured_j"] == 35.0 and metrics["energy_estimated_j"] is None
    # Net subtracts the idle power of the measured domains only (not the GPU's).
    assert metrics["energy_measured_net_j"] == pytest.approx(35.0 - 6.0 * 2.0)
    assert metrics["j_per_output_token_measured_net"] == pytest.approx(23.0 / 7)
    assert energy_scope([]).ranked == "none"
