"""Ollama through its native API, beside the OpenAI-compatible path of the openai backend.

Written against Ollama's docs/api.md (github:ollama/ollama, docs/api.md): requests stream
newline-delimited JSON objects from ``POST /api/generate`` (``response`` pieces) or ``/api/chat``
(``message.content`` pieces); the last object has ``done: true`` with the server's own timings
(``prompt_eval_count``, ``prompt_eval_duration``, ``eval_count``, ``eval_duration``,
``load_duration``, ``total_duration``, nanoseconds) and ``done_reason``. An error, before the
stream (HTTP 404 for a missing model) or in it, is an object with an ``error`` field. Model
management: ``GET /api/tags`` (local models and digests), ``POST /api/pull`` (streamed progress
``status``/``total``/``completed``, last ``status: success``), ``POST /api/show`` (``details`` with
quantization_level/parameter_size/family, ``model_info`` with general.parameter_count),
``POST /api/generate`` without a prompt loads a model and with ``keep_alive: 0`` unloads it,
``GET /api/ps`` shows loaded models with ``size`` and ``size_vram``.

httpx (the same client the openai backend uses, on the process-wide loop of
``harness.backends.aio``) rather than the ``ollama`` package: that package is a thin httpx wrapper
whose async stream yields the same parsed objects, so it would add a dependency and nothing the
measurement needs. Tested against a loopback server mirroring the documented fields
(tests/unit/test_backend_ollama.py); not yet run against a real Ollama by lembench.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from harness.backends import aio
from harness.backends.base import (
    GREEDY,
    BackendUnavailable,
    Generation,
    LoadInfo,
    ModelLoadError,
    Prompt,
    Sampling,
    error_line,
    library_version,
)
from harness.backends.ollama_options import (
    EXACT_NOTE,
    OPTIONS_SCHEMA,
    STAT_KEYS,
    engine_kwargs,
    placement_of,
    request_body,
)
from harness.backends.openai_compat import ENERGY_SCOPE, OpenAIBackend, load_tokenizer
from harness.contract.descriptions import BackendDescription

log = logging.getLogger(__name__)

_VERSIONED = ("httpx", "transformers", "llama_cpp_python")


def _same_model(a: str, b: str) -> bool:
    """Ollama names default to the tag ``latest``: ``smollm2`` and ``smollm2:latest`` match."""

    def norm(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    return norm(a) == norm(b)


class OllamaBackend(OpenAIBackend):
    """Streams from Ollama's native API and keeps its per-request timings."""

    description = BackendDescription(
        name="ollama",
        summary="Ollama's native API: streamed generate/chat with the server's own timings, "
        "pull/show/ps model management",
        options_schema=OPTIONS_SCHEMA,
        traffic=True,
        streaming=True,
        quantisations=("gguf",),
        imports=("httpx",),
        distributions=_VERSIONED,
        network=True,
        tested_on_hardware=False,  # API-mirror tests only so far
        install="./setup.sh (installs httpx); Ollama itself from ollama.com",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self.pull_log: list[dict[str, Any]] = []

    # -- HTTP helpers ---------------------------------------------------------------------------
    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One non-streamed call; connection failures are BackendUnavailable, an ``error``
        answer a RuntimeError naming the path."""
        httpx = self._httpx
        if self._client is None:
            self._client = self._new_client()
        url = self.kw["base_url"] + path
        try:
            resp = await self._client.request(method, url, json=body)
        except httpx.ConnectError as exc:
            raise BackendUnavailable(
                f"no Ollama server at {self.kw['base_url']} ({error_line(exc, 300)}); start it "
                "with `ollama serve` or set ollama.base_url"
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{method} {url} failed: {error_line(exc, 300)}") from exc
        try:
            data = resp.json()
        except ValueError:
            data = {"error": resp.text[:300]}
        if resp.status_code != 200 or (isinstance(data, dict) and "error" in data):
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code}: {data.get('error')}")
        return data

    async def _stream(self, path: str, body: dict[str, Any]) -> Any:
        """Yield ``(arrival time, object)`` for each line of a streamed answer."""
        url = self.kw["base_url"] + path
        async with self._client.stream("POST", url, json=body) as resp:
            if resp.status_code != 200:
                detail = (await resp.aread()).decode("utf-8", "replace")[:300]
                with contextlib.suppress(ValueError, AttributeError):
                    detail = json.loads(detail).get("error", detail)
                raise RuntimeError(f"POST {path}: HTTP {resp.status_code}: {detail}")
            async for line in resp.aiter_lines():
                now = time.perf_counter()  # before parsing: when the bytes arrived
                if line.strip():
                    yield now, json.loads(line)

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> LoadInfo:
        """Find (or pull) the model, read its details, load it and check where it sits."""
        try:
            import httpx
        except ImportError as exc:
            raise BackendUnavailable("the ollama backend needs httpx: pip install httpx") from exc
        self._httpx = httpx
        if self.config.get("weights") == "dummy":
            raise ModelLoadError("weights: dummy does not apply to ollama (the server loads them)")
        self.kw = kw = engine_kwargs(self.config, self.model_ref)
        self.kw["exact_output"] = []  # OpenAIBackend's field: nothing can be asked of Ollama
        t0 = time.perf_counter()
        version = aio.run(self._call("GET", "/api/version")).get("version")
        tags = aio.run(self._call("GET", "/api/tags")).get("models") or []
        entry = next((m for m in tags if _same_model(str(m.get("name")), kw["model"])), None)
        if entry is None:
            if not kw["pull"]:
                names = ", ".join(str(m.get("name")) for m in tags) or "nothing"
                raise ModelLoadError(
                    f"Ollama at {kw['base_url']} has no model {kw['model']!r} (it has: {names}); "
                    f"run `ollama pull {kw['model']}` or set ollama.pull: true"
                )
            aio.run(self._pull(), kw["timeout_s"] * 10)
            tags = aio.run(self._call("GET", "/api/tags")).get("models") or []
            entry = next((m for m in tags if _same_model(str(m.get("name")), kw["model"])), None)
            if entry is None:
                raise ModelLoadError(f"Ollama pulled {kw['model']!r} but does not list it")
        show = aio.run(self._call("POST", "/api/show", {"model": kw["model"]}))
        details = show.get("details") or {}
        info = show.get("model_info") or {}
        t_load = time.perf_counter()
        aio.run(
            self._call(
                "POST",
                "/api/generate",
                {"model": kw["model"], "keep_alive": kw["keep_alive"], "options": kw["options"]},
            ),
            kw["timeout_s"],
        )
        load_s = time.perf_counter() - t_load
        running = aio.run(self._call("GET", "/api/ps")).get("models") or []
        ps = next((m for m in running if _same_model(str(m.get("name")), kw["model"])), None)
        if ps is None:
            raise ModelLoadError(f"Ollama does not show {kw['model']!r} in /api/ps after loading")
        place = placement_of(ps)
        if kw["placement"] != "any" and place["where"] != kw["placement"]:
            raise BackendUnavailable(
                f"ollama.placement is {kw['placement']} but /api/ps shows {kw['model']} "
                f"{place['where']} ({place['size_vram']} of {place['size']} bytes in GPU memory); "
                "set num_gpu (0: CPU only) or free GPU memory"
            )
        tok_error = None
        try:
            self.tokenizer = load_tokenizer(self.model_ref)
        except Exception as exc:  # counts come from the server; synthetic prompts need one
            tok_error = error_line(exc, 300)
            log.warning("ollama backend: no tokenizer for %s: %s", self.model_ref["ref"], tok_error)
        model = {
            "kind": self.model_ref["kind"],
            "ref": self.model_ref["ref"],
            "served_model": kw["model"],
            "server_version": version,
            "digest": entry.get("digest"),
            "format": details.get("format"),
            "family": details.get("family"),
            "quantization": details.get("quantization_level"),
            "parameter_size": details.get("parameter_size"),
            "params": info.get("general.parameter_count"),
            "architecture": info.get("general.architecture"),
            "placement": place,
            "pulled": bool(self.pull_log),
            "load_s": round(load_s, 3),
            "engine_args": {k: v for k, v in kw.items() if k != "exact_output"},
            "exact_output": EXACT_NOTE,
            "token_counts": "server eval_count / prompt_eval_count",
            "energy_scope": ENERGY_SCOPE,
            "tokenizer": None if self.tokenizer is None else self.tokenizer.source,
            "tokenizer_error": tok_error,
        }
        return LoadInfo(
            device=f"ollama {kw['base_url']} ({place['where']})",
            dtype=str(details.get("quantization_level") or "server-defined"),
            load_time_s=time.perf_counter() - t0,
            model=model,
            versions={
                "ollama": version,
                **{name: library_version(name) for name in _VERSIONED},
            },
        )

    async def _pull(self) -> None:
        """``POST /api/pull`` streamed: progress to the log, errors as ModelLoadError."""
        last = -1
        try:
            async for _, obj in self._stream("/api/pull", {"model": self.kw["model"]}):
                if "error" in obj:
                    raise ModelLoadError(f"ollama pull {self.kw['model']}: {obj['error']}")
                self.pull_log.append(obj)
                total, done = obj.get("total"), obj.get("completed")
                if total and done is not None:
                    pct = int(100 * done / total)
                    if pct // 10 != last // 10:  # one line per 10 %
                        log.info("ollama pull %s: %s %d%%", self.kw["model"], obj["status"], pct)
                        last = pct
                else:
                    log.info("ollama pull %s: %s", self.kw["model"], obj.get("status"))
        except RuntimeError as exc:
            raise ModelLoadError(f"ollama pull {self.kw['model']}: {exc}") from exc
        if not self.pull_log or self.pull_log[-1].get("status") != "success":
            raise ModelLoadError(f"ollama pull {self.kw['model']} ended without success")

    def unload(self) -> None:
        """Unload the model from the server (``keep_alive: 0``) unless told not to, then close
        the connection pool."""
        if self._client is not None and self.kw.get("unload"):
            try:
                aio.run(
                    self._call(
                        "POST", "/api/generate", {"model": self.kw["model"], "keep_alive": 0}
                    ),
                    30,
                )
            except Exception:  # the server may be gone; nothing left to unload then
                log.debug("ollama unload failed", exc_info=True)
        super().unload()

    # -- generation -----------------------------------------------------------------------------
    async def agenerate(
        self, prompt: Prompt, max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> Generation:
        """One streamed request. ``token_times``: arrival of each object carrying output text.
        ``tokens_out``/``tokens_in``: the server's eval_count/prompt_eval_count (the tokenizer's
        count when the server leaves them out). ``engine_stats``: the final object's timings."""
        if self._client is None:
            self._client = self._new_client()
        kw = self.kw
        text = self._prompt_text(prompt)
        path, body = request_body(kw, text, max_new_tokens, sampling)
        times: list[float] = []
        pieces: list[str] = []
        final: dict[str, Any] | None = None
        t_start = time.perf_counter()
        try:
            async with asyncio.timeout(kw["timeout_s"]):
                async for now, obj in self._stream(path, body):
                    if "error" in obj:
                        raise RuntimeError(f"Ollama error in stream: {obj['error']}")
                    piece = (
                        (obj.get("message") or {}).get("content")
                        if kw["api"] == "chat"
                        else obj.get("response")
                    )
                    if piece:
                        times.append(now)
                        pieces.append(piece)
                    if obj.get("done"):
                        final = obj
                        break
        except TimeoutError as exc:
            raise RuntimeError(f"request to {path} timed out after {kw['timeout_s']} s") from exc
        except self._httpx.HTTPError as exc:
            raise RuntimeError(f"request to {path} failed: {error_line(exc, 300)}") from exc
        if final is None:
            raise RuntimeError(f"Ollama stream from {path} ended without done: true")
        out_text = "".join(pieces)
        stats = {k: final[k] for k in STAT_KEYS if k in final}
        if final.get("eval_count") is not None:
            tokens_out = int(final["eval_count"])
            tokens_in = int(final.get("prompt_eval_count") or 0)
            self.count_sources["server_usage"] += 1
        else:
            tokens_out, tokens_in, source = self._count(None, out_text, text, len(times))
            self.count_sources[source] += 1
        if exact and tokens_out != max_new_tokens:
            self.exact_violations += 1
        return Generation(tokens_in, tokens_out, t_start, times, out_text, engine_stats=stats)
