"""A loopback HTTP server mirroring LM Studio's REST API v0, and a fake ``lms`` CLI, for tests.

Source: the "REST API v0" page (github:lmstudio-ai/docs 1_developer/2_rest/endpoints.mdx). The
model cards copy its ``GET /api/v0/models`` example fields (``id``, ``object``, ``type``,
``publisher``, ``arch``, ``compatibility_type``, ``quantization``, ``state``,
``max_context_length``); non-streamed completions copy its ``POST /api/v0/completions`` and
``/chat/completions`` examples (``choices``, ``usage``, ``stats`` with ``tokens_per_second``,
``time_to_first_token``, ``generation_time``, ``stop_reason`` as ``maxPredictedTokensReached`` /
``eosFound``, ``model_info``, ``runtime``). Streams are OpenAI-shaped ``data:`` events ending in
``data: [DONE]``; whether the last chunk carries ``stats``/``usage`` is a switch
(``stream_stats``), since LM Studio versions differ (lmstudio-bug-tracker#676). An unknown
model is HTTP 404 ``{"error": ...}``; ``fail_after`` sends an error event mid-stream.

``/_control/{load,unload}`` is the fake's own back door, used by the fake ``lms`` script
(:func:`install_fake_lms`) the way the real CLI talks to the app; it is not part of the API.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RUNTIME = {
    "name": "llama.cpp-mac-arm64-apple-metal-advsimd",
    "version": "1.3.0",
    "supported_formats": ["gguf"],
}


def card(model_id: str, state: str = "not-loaded", kind: str = "llm") -> dict[str, Any]:
    """A model card as ``GET /api/v0/models`` shows one."""
    return {
        "id": model_id,
        "object": "model",
        "type": kind,
        "publisher": "lmstudio-community",
        "arch": "llama",
        "compatibility_type": "gguf",
        "quantization": "Q4_K_M",
        "state": state,
        "max_context_length": 8192,
    }


@dataclass
class LMStudioState:
    """What the fake holds; tests change it between requests."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    stream_stats: bool = True
    jit: bool = True  # load a not-loaded model on the first request, as LM Studio's JIT loading
    fail_after: int | None = None
    stop_after: int | None = None
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    loaded_context: dict[str, int] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    state: LMStudioState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _events(self, chunks: Any) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            data = (
                b"data: [DONE]\n\n" if chunk is None else f"data: {json.dumps(chunk)}\n\n".encode()
            )
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        s = self.state
        s.requests.append((self.path, {}))
        if self.path == "/api/v0/models":
            self._send(200, {"object": "list", "data": list(s.models.values())})
        elif self.path.startswith("/api/v0/models/"):
            from urllib.parse import unquote

            model = s.models.get(unquote(self.path.rsplit("/", 1)[1]))
            if model is None:
                self._send(404, {"error": "Model not found"})
            else:
                self._send(200, model)
        else:
            self._send(404, {"error": "Unexpected endpoint or method."})

    def do_POST(self) -> None:
        s = self.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        s.requests.append((self.path, body))
        if self.path.startswith("/_control/"):
            model = s.models.get(body.get("model"))
            if model is None:
                self._send(404, {"error": "no such model"})
                return
            model["state"] = "loaded" if self.path.endswith("/load") else "not-loaded"
            if body.get("context_length"):
                s.loaded_context[model["id"]] = int(body["context_length"])
            self._send(200, {"ok": True})
            return
        chat = self.path == "/api/v0/chat/completions"
        if self.path not in ("/api/v0/completions", "/api/v0/chat/completions"):
            self._send(404, {"error": "Unexpected endpoint or method."})
            return
        model = s.models.get(body.get("model"))
        if model is None or (model["state"] != "loaded" and not s.jit):
            self._send(404, {"error": {"message": f"Model {body.get('model')} not found"}})
            return
        model["state"] = "loaded"
        self._complete(body, chat)

    def _complete(self, body: dict[str, Any], chat: bool) -> None:
        s = self.state
        limit = int(body.get("max_tokens", 16))
        n = min(limit, s.stop_after) if s.stop_after is not None else limit
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        pieces = [f" t{i}" for i in range(n)]
        finish = "length" if n == limit else "stop"
        extras = {
            "usage": {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": n,
                "total_tokens": len(prompt.split()) + n,
            },
            "stats": {
                "tokens_per_second": 57.69230769230769,
                "time_to_first_token": 0.299,
                "generation_time": 0.156,
                "stop_reason": "maxPredictedTokensReached" if finish == "length" else "eosFound",
            },
            "model_info": {"arch": "llama", "quant": "Q4_K_M", "format": "gguf",
                           "context_length": s.loaded_context.get(body["model"], 4096)},
            "runtime": RUNTIME,
        }  # fmt: skip
        head = {"id": "cmpl-p9rtxv6fky2v9k8jrd8cc", "created": 1731990488, "model": body["model"]}
        if not body.get("stream"):
            if chat:
                choice = {"index": 0, "logprobs": None, "finish_reason": finish,
                          "message": {"role": "assistant", "content": "".join(pieces)}}  # fmt: skip
            else:
                choice = {"index": 0, "text": "".join(pieces), "logprobs": None,
                          "finish_reason": finish}  # fmt: skip
            obj = "chat.completion" if chat else "text_completion"
            self._send(200, {**head, "object": obj, "choices": [choice], **extras})
            return

        def chunks() -> Any:
            obj = "chat.completion.chunk" if chat else "text_completion"
            for i, piece in enumerate(pieces):
                if s.fail_after is not None and i == s.fail_after:
                    yield {"error": {"message": "The model has crashed without additional info."}}
                    return
                part = {"delta": {"content": piece}} if chat else {"text": piece}
                choice = {"index": 0, **part, "logprobs": None, "finish_reason": None}
                yield {**head, "object": obj, "choices": [choice]}
            last_part = {"delta": {}} if chat else {"text": ""}
            choice = {"index": 0, **last_part, "logprobs": None, "finish_reason": finish}
            last = {**head, "object": obj, "choices": [choice]}
            if s.stream_stats:
                last.update(extras)
            yield last
            yield None

        self._events(chunks())


class FakeLMStudio:
    """The fake server on 127.0.0.1 (free port) in a daemon thread; ``url`` is its base URL."""

    def __init__(self, state: LMStudioState | None = None) -> None:
        self.state = state or LMStudioState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()


def install_fake_lms(bin_dir: Path, server_url: str, fail: bool = False) -> Path:
    """Write an executable ``lms`` into ``bin_dir`` that handles ``load <model>
    [--context-length N] [--gpu X]`` and ``unload <model>`` against the fake server (and logs its
    argv to ``lms.log`` beside it); with ``fail`` it exits 1 as the CLI does for an unknown key."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "lms"
    script.write_text(
        f"""#!{sys.executable}
import json, sys, urllib.request
from pathlib import Path
Path({str(bin_dir / "lms.log")!r}).open("a").write(json.dumps(sys.argv[1:]) + "\\n")
if {fail!r}:
    print("Error: Cannot find a model matching the provided path", file=sys.stderr)
    sys.exit(1)
cmd, model = sys.argv[1], sys.argv[2]
ctx = sys.argv[sys.argv.index("--context-length") + 1] if "--context-length" in sys.argv else None
body = json.dumps({{"model": model, "context_length": ctx}}).encode()
req = urllib.request.Request({server_url!r} + "/_control/" + cmd, data=body,
                             headers={{"Content-Type": "application/json"}})
urllib.request.urlopen(req).read()
print(f"Model loaded successfully" if cmd == "load" else "Model unloaded")
"""
    )
    script.chmod(0o755)
    return script
