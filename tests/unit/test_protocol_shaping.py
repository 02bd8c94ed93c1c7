"""Workload shaping through the real protocol: batching strategies, decoding presets recorded,
and traffic simulation on a serving backend (the echo engine, real timestamps, real RAPL fake)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.contract import registry
from harness.contract.exitcodes import ExitCode
from harness.contract.io import RESULTS_DIR
from harness.contract.results import validation_problem
from harness.protocol import run
from tests.fakes.powercap import make_tree
from tests.helpers.echo_backend import ServingEchoBackend
from tests.helpers.plugins import register_backends
from tests.unit.test_protocol import _config, _request


@pytest.fixture(autouse=True)
def engines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    register_backends(
        monkeypatch,
        {
            "echo": "tests.helpers.echo_backend:EchoBackend",
            "echo-serve": "tests.helpers.echo_backend:ServingEchoBackend",
        },
    )
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(make_tree(tmp_path / "powercap")))
    ServingEchoBackend.sampled = []
    yield
    registry.reset()


def _results(io_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((io_dir / RESULTS_DIR).glob("*.json"))]


def test_dynamic_batching_groups_by_token_budget(tmp_path: Path) -> None:
    config = _config(4)
    # 4 prompts of 5 tokens + 4 output tokens = 9 each; a budget of 18 fits two per batch.
    config["batching"] = {"strategy": "dynamic", "max_tokens": 18}
    io = tmp_path / "io"
    assert run(_request(io, [config])) == ExitCode.OK
    (result,) = _results(io)
    assert validation_problem(result) is None
    assert sorted({r["batch"] for r in result["requests"]}) == [0, 1]
    assert result["decoding"] == {
        "preset": "deterministic",
        "do_sample": False,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "seed": 0,
    }


def test_decoding_preset_is_resolved_passed_and_recorded(tmp_path: Path) -> None:
    config = _config(2, model="echo-model")
    config["backend"] = "echo-serve"
    config["decoding"] = {"preset": "factual", "seed": 7}
    io = tmp_path / "io"
    assert run(_request(io, [config])) == ExitCode.OK
    (result,) = _results(io)
    assert result["decoding"]["temperature"] == 0.3 and result["decoding"]["seed"] == 7
    assert result["decoding"]["do_sample"] is True


@pytest.mark.parametrize(
    "traffic",
    [
        {"pattern": "poisson", "qps": 200.0, "seed": 1},
        {"pattern": "constant", "qps": 100.0, "seed": 0},
        {"pattern": "concurrency", "concurrency": 3, "seed": 0},
    ],
)
def test_traffic_window_is_measured_and_valid(tmp_path: Path, traffic: dict[str, Any]) -> None:
    config = _config(1)
    config["backend"] = "echo-serve"
    config["workload"]["num_prompts"] = 12
    config["traffic"] = traffic
    io = tmp_path / "io"
    assert run(_request(io, [config])) == ExitCode.OK
    (result,) = _results(io)
    assert validation_problem(result) is None, validation_problem(result)
    block = result["traffic"]
    assert block["pattern"] == traffic["pattern"] and block["requests"] == 12
    assert block["max_in_flight"] >= 1
    if traffic["pattern"] == "concurrency":
        assert block["max_in_flight"] <= 3
    assert result["metrics"]["num_requests"] == 12
    assert result["metrics"]["tokens_out"] == 12 * 4
    assert result["metrics"]["mbu"] is None  # engine steps unknown under traffic
    # Warmup went through the serving path too (agenerate), not only the measured requests.
    assert len(ServingEchoBackend.sampled) > 12
    # Every request is its own span; submissions are spread over the window, not all at 0.
    starts = sorted(r["t_start_s"] for r in result["requests"])
    if traffic["pattern"] != "concurrency":
        assert starts[-1] > starts[0]


def test_traffic_on_a_static_backend_fails_that_experiment_only(tmp_path: Path) -> None:
    bad = _config(1)
    bad["traffic"] = {"pattern": "constant", "qps": 10.0, "seed": 0}
    io = tmp_path / "io"
    assert run(_request(io, [bad, _config(2)])) == ExitCode.SOME_FAILED
    failed, ok = _results(io)
    assert failed["status"] == "failed" and failed["error"]["reason"] == "config_error"
    assert "does not serve traffic" in failed["error"]["message"]
    assert ok["status"] == "ok"
