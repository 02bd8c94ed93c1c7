"""The harness protocol, in-process, with a fake inference engine and the real RAPL meter reading a
fake powercap tree: results, failures, exit codes, events."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from harness.contract import registry
from harness.contract.exitcodes import ExitCode
from harness.contract.groups import load_group_id
from harness.contract.io import EVENTS_FILE, FATAL_FILE, RESULTS_DIR
from harness.contract.results import validation_problem
from harness.hardware import cpu_peaks
from harness.protocol import run
from tests.fakes.powercap import make_tree
from tests.helpers.plugins import register_backends
from tests.unit.conftest import CONFIG


@pytest.fixture(autouse=True)
def echo_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Register the fake engine as backend 'echo' and point RAPL at a fake powercap tree."""
    register_backends(
        monkeypatch,
        {
            "echo": "tests.helpers.echo_backend:EchoBackend",
            "echo-burn": "tests.helpers.echo_backend:BurningEchoBackend",
        },
    )
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(make_tree(tmp_path / "powercap")))
    monkeypatch.setenv("LEMBENCH_CACHE_DIR", str(tmp_path / "cache"))  # baselines, CPU peaks
    monkeypatch.setattr(cpu_peaks, "GEMM_N", 128)  # a small probe: its numbers are not tested
    monkeypatch.setattr(cpu_peaks, "COPY_BYTES", 4 * 2**20)
    yield
    registry.reset()


def _config(batch_size: int, model: str = "echo-model", **workload: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config.update(backend="echo", model=model, batch_size=batch_size)
    config["workload"].update(num_prompts=4, input_tokens=5, output_tokens=4, **workload)
    return config


def _request(io_dir: Path, configs: list[dict[str, Any]], model: str = "echo-model") -> Path:
    request = {
        "schema_version": 2,
        "suite": "unit",
        "invocation_id": "inv",
        "load_group": load_group_id(configs[0]),
        "cycle": 1,
        "cycles": 1,
        "model": {
            "kind": "hf",
            "ref": model,
            "gguf_file": None,
            "revision": None,
            "tokenizer": None,
        },
        "measurement": {
            "meters": ["rapl"],
            "country_iso_code": "USA",
            "region": None,
            "idle_baseline_s": 0.2,
            "baseline_cache_s": 0,
            "timeline_interval_s": 0.05,
            "cv_threshold": 0.1,
        },
        "experiments": [
            {"experiment_id": f"{i:012x}", "run_id": "inv-c1", "config": c}
            for i, c in enumerate(configs)
        ],
        "controller": {"lembench_version": "0.1.0", "runtime": "local"},
    }
    io_dir.mkdir(parents=True, exist_ok=True)
    (io_dir / "request.json").write_text(json.dumps(request))
    return io_dir / "request.json"


def _results(io_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((io_dir / RESULTS_DIR).glob("*.json"))]


def test_group_of_experiments_measured_and_valid(tmp_path: Path) -> None:
    io = tmp_path / "io"
    code = run(_request(io, [_config(1), _config(2)]))
    assert code == ExitCode.OK
    results = _results(io)
    assert [r["status"] for r in results] == ["ok", "ok"]
    for r in results:
        assert validation_problem(r) is None
        m = r["metrics"]
        assert m["num_requests"] == 4
        assert m["tokens_in"] == 4 * 5
        assert m["tokens_out"] == 4 * 4  # exact output
        assert m["throughput_out_tok_s"] == pytest.approx(m["tokens_out"] / m["duration_s"])
        assert m["ttft_s"]["max"] < m["e2e_latency_s"]["max"]
        assert m["itl_s"]["n"] == 4 * 3
        assert r["energy"]["method"] == "rapl" and r["energy"]["is_estimate"] is False
        assert r["flops"]["method"] == "params_x2"
        assert r["flops"]["sequence_length"] == 5 + 4
        assert r["provenance"]["measurement"]["used"][0]["name"] == "rapl"
        for req in r["requests"]:
            assert req["t_start_s"] <= req["t_first_token_s"] <= req["t_end_s"]
    events = [json.loads(x)["event"] for x in (io / EVENTS_FILE).read_text().splitlines()]
    assert events[:2] == ["loading", "loaded"]
    assert events.count("measuring") == 2 and events.count("result") == 2


def test_tokens_are_counted_not_assumed(tmp_path: Path) -> None:
    io = tmp_path / "io"
    assert run(_request(io, [_config(2, exact_output=False)])) == ExitCode.OK
    (result,) = _results(io)
    assert result["metrics"]["tokens_out"] == 4 * 2  # the engine stopped after 2 tokens
    assert not any(w["code"] == "exact_output_violated" for w in result["warnings"])


def test_one_failing_experiment_does_not_stop_the_group(tmp_path: Path) -> None:
    io = tmp_path / "io"
    configs = [_config(3), _config(5), _config(2)]  # batch 3 raises, batch 5 is OOM, batch 2 works
    configs[0]["workload"]["num_prompts"] = 3
    configs[1]["workload"]["num_prompts"] = 5
    assert run(_request(io, configs)) == ExitCode.SOME_FAILED
    failed, oom, ok = _results(io)
    assert failed["status"] == "failed" and failed["error"]["reason"] == "backend_error"
    assert "engine exploded at batch 3" in failed["error"]["message"]
    assert oom["error"]["reason"] == "oom"
    assert ok["status"] == "ok"
    assert all(validation_problem(r) is None for r in (failed, oom, ok))


@pytest.mark.parametrize(
    ("model", "code", "reason"),
    [
        ("fail-load", ExitCode.MODEL_LOAD_ERROR, "model_load_error"),
        ("unavailable", ExitCode.BACKEND_UNAVAILABLE, "backend_unavailable"),
    ],
)
def test_fatal_load_errors_have_named_exit_codes(
    tmp_path: Path, model: str, code: int, reason: str
) -> None:
    io = tmp_path / "io"
    assert run(_request(io, [_config(1, model=model)], model=model)) == code
    fatal = json.loads((io / FATAL_FILE).read_text())
    assert fatal["reason"] == reason
    assert not (io / RESULTS_DIR).exists()


def test_unknown_backend_is_unavailable(tmp_path: Path) -> None:
    io = tmp_path / "io"
    config = _config(1)
    config["backend"] = "no-such-engine"
    code = run(_request(io, [config]))
    # Not registered (the controller rejects such suites earlier; the harness checks again).
    assert code == ExitCode.CONFIG_ERROR
    assert (
        "unknown backend 'no-such-engine'" in json.loads((io / FATAL_FILE).read_text())["message"]
    )


def test_invalid_request_is_a_config_error(tmp_path: Path) -> None:
    io = tmp_path / "io"
    io.mkdir()
    (io / "request.json").write_text('{"schema_version": 1}')
    assert run(io / "request.json") == ExitCode.CONFIG_ERROR
    assert "required" in json.loads((io / FATAL_FILE).read_text())["message"]


def test_request_mixing_load_groups_is_refused(tmp_path: Path) -> None:
    io = tmp_path / "io"
    other = _config(1)
    other["precision"] = "bf16"
    assert run(_request(io, [_config(1), other])) == ExitCode.CONFIG_ERROR


def test_explicit_meter_that_is_unavailable_fails_the_launch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LEMBENCH_POWERCAP_ROOT", str(tmp_path / "absent"))
    io = tmp_path / "io"
    assert run(_request(io, [_config(1)])) == ExitCode.CONFIG_ERROR
    assert "rapl" in json.loads((io / FATAL_FILE).read_text())["message"].lower()


def test_workload_error_is_a_config_error_of_that_experiment(tmp_path: Path) -> None:
    io = tmp_path / "io"
    broken = _config(1)
    broken["workload"] = {
        "kind": "jsonl",
        "path": "missing.jsonl",
        "field": "prompt",
        "num_prompts": None,
        "output_tokens": 4,
        "exact_output": False,
    }
    assert run(_request(io, [broken, _config(2)])) == ExitCode.SOME_FAILED
    failed, ok = _results(io)
    assert failed["error"]["reason"] == "config_error"
    assert "missing.jsonl" in failed["error"]["message"]
    assert ok["status"] == "ok"


def _events(io: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (io / EVENTS_FILE).read_text().splitlines()]


def test_time_accounting_threads_and_one_warmup_per_group(tmp_path: Path) -> None:
    """The harness reports where its time went, records each experiment's thread setting, and
    warms a group once where the backend's shapes need no warmup of their own."""
    io = tmp_path / "io"
    configs = [_config(1), _config(2)]
    for c in configs:
        c.update(backend="echo-burn", threads=1)
        c["warmup"] = {"runs": 2}
    assert run(_request(io, configs)) == ExitCode.OK
    first, second = _results(io)
    for r in (first, second):
        assert validation_problem(r) is None
        assert r["provenance"]["measurement"]["threads"]["count"] == 1
        assert r["provenance"]["measurement"]["threads"]["source"] == "experiment"
    assert first["provenance"]["measurement"]["warmup"]["runs"] == 2
    assert second["provenance"]["measurement"]["warmup"] == {
        "runs": 0,
        "reused_group_warmup": True,
        "per_shape": False,
        "latencies_s": [],
    }
    if importlib.util.find_spec("torch") is not None:  # CPU peaks are measured, and say so
        assert first["flops"]["peak_source"].startswith("measured on this host")
        assert first["metrics"]["mfu"] > 0
        assert first["metrics"]["mbu"] is None  # echo states no weight width: not guessed
        assert second["flops"]["peak_source"] == first["flops"]["peak_source"]  # probed once
    (timings,) = [e for e in _events(io) if e["event"] == "timings"]
    assert {"startup_s", "load_s", "baseline_s", "warmup_s", "windows_s"} <= set(timings)
    windows = first["metrics"]["duration_s"] + second["metrics"]["duration_s"]
    assert timings["windows_s"] == pytest.approx(windows, abs=2e-3)
    assert timings["warmup_s"] > 0 and timings["baseline_s"] > 0


def test_shape_sensitive_backend_warms_every_shape(tmp_path: Path) -> None:
    io = tmp_path / "io"
    assert run(_request(io, [_config(1), _config(2)])) == ExitCode.OK
    for r in _results(io):
        assert r["provenance"]["measurement"]["warmup"]["reused_group_warmup"] is False
        assert r["provenance"]["measurement"]["threads"] is None  # echo sets no thread count


def test_closure_is_checked_where_the_meter_gives_a_real_timeline(tmp_path: Path) -> None:
    """RAPL counters rising during the window (the timeline samples them): the phase split comes
    from the series, so closure is a real check and it holds; estimates get null (time share)."""
    io = tmp_path / "io"
    config = _config(2)
    config["backend"] = "echo-burn"
    config["workload"]["output_tokens"] = 40  # ~0.16 s window: several 0.05 s timeline samples
    assert run(_request(io, [config])) == ExitCode.OK
    (r,) = _results(io)
    phases = r["energy"]["phases"]
    assert phases["method"] == "timeline"
    assert phases["closure_ok"] is True and phases["closure_rel_error"] <= 0.01
    assert phases["decode_j"] > 0 and r["energy"]["components"][0]["energy_j"] > 0
