"""A fake SGLang server on 127.0.0.1: the native ``POST /generate`` (JSON, or server-sent events
with ``stream: true``) and ``GET /get_model_info``, over the fake's simulation."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sglang import _sim


class FakeServer:
    """Use as ``with FakeServer() as url:``; ``fail_with``: the status /generate answers."""

    def __init__(self, model_path: str = "fake-org/tiny-llama", interval: int = 1) -> None:
        self.model_path, self.interval, self.fail_with = model_path, interval, None
        self.bodies: list[dict[str, Any]] = []
        ids = itertools.count()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != "/get_model_info":
                    return self._send(404, b'{"detail":"Not Found"}')
                info = {"model_path": owner.model_path, "tokenizer_path": owner.model_path,
                        "is_generation": True}  # fmt: skip
                self._send(200, json.dumps(info).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                owner.bodies.append(body)
                if self.path != "/generate":
                    return self._send(404, b'{"detail":"Not Found"}')
                if owner.fail_with:
                    return self._send(owner.fail_with, b'{"error":{"message":"bad request"}}')
                try:
                    chunks = asyncio.run(self._collect(body, f"srv-{next(ids)}"))
                except (TypeError, ValueError) as exc:  # SamplingParams rejected it
                    error = {"error": {"message": str(exc)}}
                    return self._send(400, json.dumps(error).encode())
                if not body.get("stream"):
                    return self._send(200, json.dumps(chunks[-1]).encode())
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

            async def _collect(self, body: dict, rid: str) -> list[dict]:
                stream = _sim.stream(rid, body["input_ids"], body.get("sampling_params") or {},
                                     owner.interval)  # fmt: skip
                return [chunk async for chunk in stream]

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
