"""A loopback HTTP server that mirrors Ollama's native API field for field, for unit tests.

Source: Ollama's docs/api.md (github:ollama/ollama). The response objects below copy the docs'
examples: the streamed ``/api/generate`` objects (``model``, ``created_at``, ``response``,
``done``) and the final one (``done_reason``, ``context``, ``total_duration``,
``load_duration``, ``prompt_eval_count``, ``prompt_eval_duration``, ``eval_count``,
``eval_duration``); ``/api/chat`` with ``message: {role, content}``; "Load a model" (no prompt:
``done: true``, ``response: ""``) and "Unload a model" (``keep_alive: 0``: ``done_reason:
"unload"``); ``/api/tags`` (``name``, ``modified_at``, ``size``, ``digest``, ``details``);
``/api/show`` (``details`` + ``model_info`` with ``general.parameter_count``); ``/api/pull``
(``pulling manifest``, ``downloading <digest>`` with ``total``/``completed``, ``verifying sha256
digest``, ``writing manifest``, ``success``); ``/api/ps`` (``size``, ``size_vram``,
``expires_at``); ``/api/version``. Errors are ``{"error": "..."}`` objects: HTTP 404 for a model
the server lacks (``model "x" not found, try pulling it first``), and in the stream, after some
output, when a test asks for a failure mid-stream.

Tokens are words: the fake "model" answers with ``w0 w1 ...`` and counts prompt words.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREATED = "2023-08-04T19:22:45.499127Z"


@dataclass
class OllamaState:
    """What the fake server holds; tests change it between requests."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> tags entry
    pullable: dict[str, dict[str, Any]] = field(default_factory=dict)  # the "library"
    loaded: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> ps entry
    vram_share: float = 0.0  # of a loaded model's size in GPU memory
    fail_after: int | None = None  # stream an error object after this many pieces
    stop_after: int | None = None  # end a generation early (done_reason "stop")
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    version: str = "0.5.7"


def model_entry(name: str, quant: str = "Q4_1", params: str = "135M") -> dict[str, Any]:
    """A ``/api/tags`` entry as the docs show one."""
    return {
        "name": name,
        "model": name,
        "modified_at": "2023-11-04T14:56:49.277302595-07:00",
        "size": 98_000_000,
        "digest": "9f438cb9cd581fc025612d27f7c1a6669ff83a8bb0ed86c94fcf4c5440555697",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": params,
            "quantization_level": quant,
        },
    }


class _Handler(BaseHTTPRequestHandler):
    state: OllamaState  # set on the subclass the server is built with
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as Ollama's Go server

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, objects: Any) -> None:
        # Ollama streams application/x-ndjson with chunked transfer encoding.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for obj in objects:
            line = (json.dumps(obj) + "\n").encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def _find(self, name: str) -> str | None:
        full = name if ":" in name else f"{name}:latest"
        return next((m for m in self.state.models if m in (name, full)), None)

    def _missing(self, name: str) -> None:
        self._send(404, {"error": f'model "{name}" not found, try pulling it first'})

    def do_GET(self) -> None:
        s = self.state
        s.requests.append((self.path, {}))
        if self.path == "/api/version":
            self._send(200, {"version": s.version})
        elif self.path == "/api/tags":
            self._send(200, {"models": list(s.models.values())})
        elif self.path == "/api/ps":
            self._send(200, {"models": list(s.loaded.values())})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        s, body = self.state, self._body()
        s.requests.append((self.path, body))
        if self.path == "/api/pull":
            self._pull(body)
            return
        name = self._find(str(body.get("model", "")))
        if name is None:
            self._missing(str(body.get("model")))
            return
        if self.path == "/api/show":
            e = s.models[name]
            self._send(
                200,
                {
                    "modelfile": f"FROM {name}",
                    "parameters": "num_keep 24",
                    "template": "{{ .Prompt }}",
                    "details": e["details"],
                    "model_info": {
                        "general.architecture": "llama",
                        "general.file_type": 3,
                        "general.parameter_count": 134515008,
                        "llama.block_count": 30,
                        "llama.context_length": 8192,
                    },
                },
            )
        elif self.path in ("/api/generate", "/api/chat"):
            self._generate(name, body, chat=self.path == "/api/chat")
        else:
            self._send(404, {"error": "not found"})

    def _pull(self, body: dict[str, Any]) -> None:
        name = str(body.get("model"))
        entry = self.state.pullable.get(name)
        if entry is None:
            missing = {"error": "pull model manifest: file does not exist"}
            self._stream([{"status": "pulling manifest"}, missing])
            return
        digest = entry["digest"]
        total = entry["size"]
        steps = [{"status": "pulling manifest"}]
        steps += [
            {"status": f"downloading {digest}", "digest": digest, "total": total, "completed": c}
            for c in (0, total // 2, total)
        ]
        steps += [
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "removing any unused layers"},
            {"status": "success"},
        ]
        self.state.models[entry["name"]] = entry
        self._stream(steps)

    def _generate(self, name: str, body: dict[str, Any], chat: bool) -> None:
        s = self.state
        prompt = body.get("messages") if chat else body.get("prompt")
        if not prompt:  # load or unload, as the docs' "Load a model" / "Unload a model"
            if body.get("keep_alive") == 0:
                s.loaded.pop(name, None)
                reason = "unload"
            else:
                size = s.models[name]["size"]
                s.loaded[name] = {
                    **s.models[name],
                    "expires_at": "2024-06-04T14:38:31.83753-07:00",
                    "size_vram": int(size * s.vram_share),
                }
                reason = "load"
            out = {"model": name, "created_at": CREATED, "done": True, "done_reason": reason}
            empty = {"role": "assistant", "content": ""}
            out.update({"message": empty} if chat else {"response": ""})
            self._send(200, out)
            return
        text = prompt[-1]["content"] if chat else prompt
        n_predict = int((body.get("options") or {}).get("num_predict", 8))
        n = min(n_predict, s.stop_after) if s.stop_after is not None else n_predict

        def objects() -> Any:
            for i in range(n):
                if s.fail_after is not None and i == s.fail_after:
                    yield {"error": "an error was encountered while running the model: oom"}
                    return
                piece = f" w{i}"
                obj: dict[str, Any] = {"model": name, "created_at": CREATED, "done": False}
                if chat:
                    obj["message"] = {"role": "assistant", "content": piece, "images": None}
                else:
                    obj["response"] = piece
                yield obj
            final: dict[str, Any] = {
                "model": name,
                "created_at": CREATED,
                "done": True,
                "done_reason": "length" if n == n_predict else "stop",
                "total_duration": 10706818083,
                "load_duration": 6338219291,
                "prompt_eval_count": len(text.split()),
                "prompt_eval_duration": 130079000,
                "eval_count": n,
                "eval_duration": 4232710000,
            }
            if chat:
                final["message"] = {"role": "assistant", "content": ""}
            else:
                final.update(response="", context=[1, 2, 3])
            yield final

        self._stream(objects())


class FakeOllama:
    """The server on 127.0.0.1 (a free port), in a daemon thread; ``url`` is its base URL."""

    def __init__(self, state: OllamaState | None = None) -> None:
        self.state = state or OllamaState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
