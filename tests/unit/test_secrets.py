"""No configured secret (API key, token, URL credentials) reaches anything lembench writes or
prints, whatever a server echoes back. Before: an OpenAI-compatible server that echoed the key put
it into result.json, harness.log, the console and the HTML page; ``user:pw@`` in ``base_url`` was
kept verbatim in results, exports and index.html."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.contract import redact
from harness.contract.redact import MASK, Redactor
from lembench.store import RESULT_FILE, ResultStore
from tests.unit.conftest import make_result

KEY = "sk-test-0123456789abcdef"
PASSWORD = "hunter2-secret"


class _Echo(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that leaks: its model list and its errors quote the request's
    Authorization header."""

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self._send(200, {"data": [{"id": "smollm2-135m", "owned_by": auth}]})

    def do_POST(self) -> None:
        auth = self.headers.get("Authorization", "")
        self._send(401, {"error": {"message": f"invalid key {auth} for user admin:{PASSWORD}"}})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


def _all_text(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", errors="replace") for p in folder.rglob("*") if p.is_file()
    )


def test_echoing_server_leaks_nothing_end_to_end(tmp_path: Path, server: int) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "schema_version: 3\nname: leak\nexperiment:\n  backend: openai\n  model: smollm2-135m\n"
        f"  openai:\n    base_url: http://admin:{PASSWORD}@127.0.0.1:{server}/v1\n"
        "    api_key_env: LEAK_TEST_KEY\n"
        "  workload: {kind: synthetic, num_prompts: 1, input_tokens: 4, output_tokens: 2}\n"
    )
    env = {**os.environ, "LEAK_TEST_KEY": KEY}
    lembench = [sys.executable, "-m", "lembench"]
    run = subprocess.run(
        [*lembench, "run", str(suite), "--results-dir", "r", "--runtime", "local"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 3, run.stderr  # the experiment failed (HTTP 401), and was stored
    stored = list((tmp_path / "r").rglob(RESULT_FILE))
    assert len(stored) == 1
    result = json.loads(stored[0].read_text())
    assert "invalid key" in result["error"]["message"]  # the server's message is kept...
    assert MASK in result["error"]["message"]  # ...with the secrets masked
    report = subprocess.run(
        [*lembench, "report", "r", "--out", "site"], cwd=tmp_path, capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    export = subprocess.run(
        [*lembench, "results", "export", "--runs", "--results-dir", "r"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    show = subprocess.run(
        [*lembench, "results", "show", result["run_id"], "--json", "--results-dir", "r"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    files = _all_text(tmp_path / "r") + _all_text(tmp_path / "site")
    everything = "\n".join([run.stdout, run.stderr, export.stdout, show.stdout, files])
    assert KEY not in everything
    assert PASSWORD not in everything
    assert f"admin:{PASSWORD}@" not in everything


def test_redactor_masks_values_and_url_credentials() -> None:
    request = {
        "experiments": [
            {
                "config": {
                    "openai": {
                        "base_url": f"https://bob:{PASSWORD}@api.example/v1",
                        "api_key_env": "MY_KEY",
                    }
                }
            }
        ]
    }
    r = Redactor.for_request(request, {"MY_KEY": KEY, "HF_TOKEN": "hf_abcdefgh", "OTHER": "x" * 9})
    text = f"Bearer {KEY}; token hf_abcdefgh; url https://bob:{PASSWORD}@api.example/v1 {PASSWORD}"
    masked = r.text(text)
    assert KEY not in masked and "hf_abcdefgh" not in masked and PASSWORD not in masked
    assert "https://***@api.example/v1" in masked
    assert r.text("x" * 9) == "x" * 9  # other variables are not secrets
    doc = r.document({"a": [KEY, {"b": f"key={KEY}"}], KEY: 1, "n": 2.5})
    assert doc == {"a": [MASK, {"b": f"key={MASK}"}], MASK: 1, "n": 2.5}
    assert Redactor(["abc"]).text("abc") == "abc"  # too short to be a real secret


def test_store_masks_what_it_stores_and_readers_mask_old_runs(tmp_path: Path) -> None:
    result = make_result()
    result["config"]["openai"] = {"base_url": f"http://u:{PASSWORD}@host/v1"}
    result["warnings"] = []
    result["provenance"]["model"] = {"server_model_card": {"owned_by": f"Bearer {KEY}"}}
    log = tmp_path / "harness.log"
    log.write_text(f"GET http://u:{PASSWORD}@host/v1/models with Bearer {KEY}\n")
    store = ResultStore(tmp_path / "r")
    run_dir = store.store(result, log=log, redactor=Redactor([KEY]))
    assert KEY not in _all_text(run_dir) and PASSWORD not in _all_text(run_dir)
    # A run stored by an older lembench, credentials in its URL: no reader shows them.
    old = run_dir.parent / "old-run"
    old.mkdir()
    raw = json.loads((run_dir / RESULT_FILE).read_text())
    raw["run_id"] = "old-run"
    raw["config"]["openai"]["base_url"] = f"http://u:{PASSWORD}@host/v1"
    (old / RESULT_FILE).write_text(json.dumps(raw))
    runs = list(ResultStore(tmp_path / "r").iter_runs())
    assert len(runs) == 2
    assert PASSWORD not in json.dumps([r.result for r in runs])


def test_installed_redactor_masks_logs_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.contract.io import EventLog, write_json_atomic

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    root = logging.getLogger()
    root.addHandler(handler)
    monkeypatch.setattr(redact, "_active", None)
    try:
        redact.install(Redactor([KEY]))
        logging.getLogger("t").error("server said %s", KEY)
        print(f"stderr {KEY}", file=sys.stderr)
        write_json_atomic(tmp_path / "x.json", {"m": KEY})
        EventLog(tmp_path).emit("fatal", message=KEY)
    finally:
        root.removeHandler(handler)
    assert KEY not in stream.getvalue() and stream.getvalue().count(MASK) == 2
    assert KEY not in (tmp_path / "x.json").read_text()
    assert KEY not in (tmp_path / "events.jsonl").read_text()


def test_published_pages_carry_no_absolute_local_paths(tmp_path: Path) -> None:
    from lembench.report.build import build_site

    repo = tmp_path / "home" / "alice" / "project"
    (repo / ".git").mkdir(parents=True)
    (repo / "suites").mkdir()
    (repo / "suites" / "mine.yaml").write_text("x")
    scratch = tmp_path / "tmp" / "scratch"
    store = ResultStore(tmp_path / "r")
    for status in ("ok", "failed"):
        result = make_result(status, run_id=f"20261121T000000Z-abcdef-c{1 + (status == 'ok')}")
        result["cycle"] = 1 + (status == "ok")
        result["cycles"] = 2
        result["provenance"]["controller"]["suite_file"] = str(repo / "suites" / "mine.yaml")
        result["provenance"]["model"] = {"requested": {"ref": str(scratch / "model.gguf")}}
        if status == "failed":
            result["error"] = {
                "reason": "backend_error",
                "message": f"cannot open {scratch}/model.gguf",
                "exit_code": None,
            }
        store.store(result)
    build_site(tmp_path / "r", tmp_path / "site")
    site = _all_text(tmp_path / "site")
    assert str(tmp_path) not in site
    assert "suites/mine.yaml" in site  # relative to its repository
    assert "model.gguf" in site  # outside any repository: the file name alone


def test_csv_export_neutralises_formulas() -> None:
    import polars as pl

    from lembench.report.export import export

    frame = pl.DataFrame(
        {"msg": ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "fine"], "n": [-1.5] * 5}
    )
    out = io.StringIO()
    export(frame, "csv", out)
    lines = out.getvalue().splitlines()[1:]
    assert [line.split(",")[0].strip('"')[:2] for line in lines[:4]] == ["'=", "'+", "'-", "'@"]
    assert lines[4] == "fine,-1.5"  # numbers, negative ones too, stay numbers
