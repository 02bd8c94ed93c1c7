"""v1 result files upgrade to v2 on read (new fields null), on the frozen real v1 files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.contract.results import validation_problem
from harness.contract.schemas import load_schema
from lembench.errors import UserError
from lembench.results.migrate import CURRENT_VERSION, V1_PEAK_SOURCE, V2_METRICS, upgrade
from lembench.store import ResultStore

DATA = Path(__file__).resolve().parents[1] / "data"
V1_FILES = sorted(DATA.glob("result-v1-*.json"))


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_there_are_frozen_v1_files() -> None:
    assert len(V1_FILES) >= 3


@pytest.mark.parametrize("path", V1_FILES, ids=lambda p: p.name)
def test_upgraded_v1_validates_against_the_current_schema(path: Path) -> None:
    if load_schema("result")["properties"]["schema_version"].get("const") != CURRENT_VERSION:
        pytest.skip(f"result.schema.json is not at schema_version {CURRENT_VERSION}")
    result = json.loads(path.read_text())
    assert validation_problem(upgrade(result)) is None


def test_ok_v1_gains_every_v2_field_as_null() -> None:
    v2 = upgrade(load("result-v1-ok-synthetic.json"))
    assert v2["schema_version"] == 5  # through v2, v3 (decoding, traffic null), v4 (quality), v5
    assert v2["decoding"] is None and v2["traffic"] is None and v2["quality"] is None
    assert v2["timeline"] is None
    assert {k: v2["metrics"][k] for k in V2_METRICS} == dict.fromkeys(V2_METRICS)
    assert v2["energy"]["baseline"] is None and v2["energy"]["phases"] is None
    assert v2["flops"]["peak_flops_per_s"] is None
    assert v2["flops"]["peak_memory_bw_bytes_per_s"] is None
    assert v2["flops"]["peak_source"] == V1_PEAK_SOURCE == "not recorded (v1 result)"
    assert v2["environment"]["container_image_digest"] is None
    # Recorded v1 values are kept as they were.
    v1 = load("result-v1-ok-synthetic.json")
    assert v2["metrics"]["j_per_output_token"] == v1["metrics"]["j_per_output_token"]
    assert v2["energy"]["components"] == v1["energy"]["components"]
    assert v2["requests"] == v1["requests"]


def test_failed_v1_gains_only_what_applies() -> None:
    v2 = upgrade(load("result-v1-failed-humaneval.json"))
    assert v2["schema_version"] == 5 and v2["timeline"] is None
    assert "metrics" not in v2 and "energy" not in v2 and "flops" not in v2
    assert v2["error"]["reason"] == "model_load_error"


def test_upgrade_does_not_modify_its_input() -> None:
    v1 = load("result-v1-ok-humaneval.json")
    before = copy.deepcopy(v1)
    upgrade(v1)
    assert v1 == before


def test_v2_is_returned_unchanged_and_upgrade_is_idempotent() -> None:
    v2 = upgrade(load("result-v1-ok-synthetic.json"))
    assert upgrade(v2) is v2


def test_newer_versions_ask_for_a_newer_lembench() -> None:
    future = {**load("result-v1-ok-synthetic.json"), "schema_version": CURRENT_VERSION + 1}
    with pytest.raises(ValueError) as e:
        upgrade(future)
    assert str(e.value) == (
        f"result schema_version {CURRENT_VERSION + 1} is newer than this lembench "
        f"(max {CURRENT_VERSION}); upgrade lembench"
    )


@pytest.mark.parametrize("doc", [{}, {"schema_version": "1"}, {"schema_version": True}, [1]])
def test_documents_without_a_version_are_rejected(doc: object) -> None:
    with pytest.raises(ValueError):
        upgrade(doc)  # type: ignore[arg-type]


def _put(root: Path, result: dict, name: str = "result.json") -> Path:
    folder = root / result["suite"] / result["experiment_id"] / result["run_id"]
    folder.mkdir(parents=True)
    (folder / name).write_text(json.dumps(result))
    return folder / name


def test_store_yields_upgraded_results(tmp_path: Path) -> None:
    for path in V1_FILES:
        _put(tmp_path, json.loads(path.read_text()))
    runs = list(ResultStore(tmp_path).iter_runs())
    assert len(runs) == len(V1_FILES)
    assert all(r.result["schema_version"] == 5 and "timeline" in r.result for r in runs)
    # The stored files themselves are never rewritten.
    assert all(
        json.loads((r.path / "result.json").read_text())["schema_version"] == 1 for r in runs
    )


def test_store_refuses_results_from_a_newer_lembench(tmp_path: Path) -> None:
    path = _put(tmp_path, {**load("result-v1-ok-synthetic.json"), "schema_version": 9})
    with pytest.raises(UserError, match="upgrade lembench") as e:
        list(ResultStore(tmp_path).iter_runs())
    assert str(path) in str(e.value)


def test_store_skips_files_without_a_version(tmp_path: Path) -> None:
    good = load("result-v1-ok-synthetic.json")
    _put(tmp_path, good)
    bad = {k: v for k, v in good.items() if k != "schema_version"}
    _put(tmp_path, {**bad, "run_id": "other-run"})
    assert [r.run_id for r in ResultStore(tmp_path).iter_runs()] == [good["run_id"]]


def _mixed_v4() -> dict:
    """The frozen v4 run as a GPU host without RAPL would have written it: NVML measured the GPU,
    codecarbon estimated CPU and DRAM (the whole result flagged an estimate in v4)."""
    raw = load("result-v4-ok-cpu-run.json")
    energy, metrics = raw["energy"], raw["metrics"]
    energy["components"].insert(
        0,
        {
            "meter": "nvml",
            "method": "nvml_counter",
            "domain": "gpu",
            "is_estimate": False,
            "energy_j": 120.0,
        },
    )
    energy["method"] = "nvml_counter+estimate_codecarbon"
    energy["baseline"]["power_w"]["gpu"] = 30.0
    metrics["energy_gpu_j"] = 120.0
    metrics["energy_total_j"] += 120.0
    return raw


def test_v4_mixed_result_upgrades_to_its_measured_gpu_part() -> None:
    raw = _mixed_v4()
    m0 = raw["metrics"]
    up = upgrade(raw)
    assert validation_problem(up) is None
    scope = up["energy"]["scope"]
    assert scope["ranked"] == "measured"
    assert scope["measured_domains"] == ["gpu"] and scope["measured_method"] == "nvml_counter"
    assert scope["estimated_domains"] == ["cpu", "dram"]
    m = up["metrics"]
    assert m["energy_measured_j"] == 120.0
    assert m["energy_estimated_j"] == pytest.approx(m0["energy_cpu_j"] + m0["energy_dram_j"])
    assert m["j_per_output_token_measured"] == pytest.approx(120.0 / m0["tokens_out"])
    # Net: only the GPU's idle power (30 W) is subtracted from the measured GPU energy.
    net = 120.0 - 30.0 * m0["duration_s"]
    assert m["energy_measured_net_j"] == pytest.approx(net)
    assert m["j_per_output_token_measured_net"] == pytest.approx(net / m0["tokens_out"])
    assert m["j_per_output_token"] == m0["j_per_output_token"]  # the whole system, unchanged


def test_frozen_v4_cpu_result_upgrades_to_v5() -> None:
    """A real v4 quickstart result (codecarbon on CPU): its time-share closure "true" was never a
    check, so v5 says null; every other recorded value is kept."""
    v4 = load("result-v4-ok-synthetic-cpu.json")
    assert v4["schema_version"] == 4 and v4["energy"]["phases"]["method"] == "time_share"
    assert v4["energy"]["phases"]["closure_ok"] is True
    v5 = upgrade(v4)
    assert v5["schema_version"] == 5 == CURRENT_VERSION
    assert v5["energy"]["phases"]["closure_ok"] is None
    assert {k: v for k, v in v5["energy"]["phases"].items() if k != "closure_ok"} == {
        k: v for k, v in v4["energy"]["phases"].items() if k != "closure_ok"
    }
    assert v5["energy"]["baseline"] == v4["energy"]["baseline"]  # sizing fields are optional
    assert {k: v5["metrics"][k] for k in v4["metrics"]} == v4["metrics"]
    assert v4["energy"]["phases"]["closure_ok"] is True  # the input is not modified
    assert validation_problem(v5) is None
