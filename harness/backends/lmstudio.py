"""LM Studio through its native REST API v0 (``/api/v0/*``), beside the OpenAI-compatible path.

What it adds over the openai backend: LM Studio's own ``stats`` per response
(tokens_per_second, time_to_first_token, generation_time, stop_reason) stored per request
(``engine_stats``), the model's quantisation, arch, format and context from ``/api/v0/models``
and the response's ``model_info``/``runtime``, and model load/unload with the ``lms`` CLI (or LM
Studio's just-in-time loading). API details and sources: :mod:`harness.backends.lmstudio_options`.
Streams are OpenAI-shaped server-sent events (``data: {...}``, ``data: [DONE]``).

Tested against a loopback server mirroring the documented responses field for field
(tests/fakes/lmstudio_server.py); not yet run against a real LM Studio by lembench.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from typing import Any
from urllib.parse import quote

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
from harness.backends.lmstudio_options import (
    EXACT_NOTE,
    OPTIONS_SCHEMA,
    STREAM_NOTE,
    engine_kwargs,
    lms_load_args,
    request_body,
)
from harness.backends.openai_compat import (
    ENERGY_SCOPE,
    OpenAIBackend,
    load_tokenizer,
    parse_chunk,
)
from harness.contract.descriptions import BackendDescription

log = logging.getLogger(__name__)

_VERSIONED = ("httpx", "transformers", "llama_cpp_python")
LMS_TIMEOUT_S = 600  # loading a large model from disk can take minutes


class LMStudioBackend(OpenAIBackend):
    """Requests to LM Studio's /api/v0 endpoints with its per-response stats."""

    description = BackendDescription(
        name="lmstudio",
        summary="LM Studio's native REST API (/api/v0): per-response stats, model info, lms "
        "load/unload",
        options_schema=OPTIONS_SCHEMA,
        aliases=("lm-studio",),
        traffic=True,
        streaming=True,
        quantisations=("gguf", "mlx"),
        imports=("httpx",),
        distributions=_VERSIONED,
        network=True,
        tested_on_hardware=False,  # API-mirror tests only so far
        install="./setup.sh (installs httpx); LM Studio itself from lmstudio.ai",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self._loaded_by_us = False

    # -- HTTP helpers ---------------------------------------------------------------------------
    async def _get(self, path: str) -> tuple[int, Any]:
        httpx = self._httpx
        if self._client is None:
            self._client = self._new_client()
        url = self.kw["base_url"] + path
        try:
            resp = await self._client.get(url, timeout=min(self.kw["timeout_s"], 30.0))
        except httpx.ConnectError as exc:
            raise BackendUnavailable(
                f"no LM Studio server at {self.kw['base_url']} ({error_line(exc, 300)}); start "
                "it with `lms server start` or set lmstudio.base_url"
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"GET {url} failed: {error_line(exc, 300)}") from exc
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, {"error": resp.text[:300]}

    async def _model_card(self) -> dict[str, Any] | None:
        """``GET /api/v0/models/{model}``, None when LM Studio does not have it."""
        code, data = await self._get(f"/api/v0/models/{quote(self.kw['model'], safe='')}")
        if code == 200 and isinstance(data, dict) and "error" not in data:
            return data
        if code in (200, 404):
            return None
        raise BackendUnavailable(f"GET /api/v0/models/{self.kw['model']}: HTTP {code}: {data}")

    def _lms(self, *args: str) -> None:
        """Run the ``lms`` CLI; a failure is a ModelLoadError with its last output line."""
        try:
            done = subprocess.run(
                list(args), capture_output=True, text=True, timeout=LMS_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelLoadError(f"{' '.join(args)}: {error_line(exc, 300)}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise ModelLoadError(
                f"{' '.join(args)} exited {done.returncode}: {tail[-1] if tail else ''}"
            )

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> LoadInfo:
        """Check the model, load it (lms or just in time), send one non-streamed probe to read
        ``model_info`` and ``runtime``."""
        try:
            import httpx
        except ImportError as exc:
            raise BackendUnavailable("the lmstudio backend needs httpx: pip install httpx") from exc
        self._httpx = httpx
        if self.config.get("weights") == "dummy":
            raise ModelLoadError("weights: dummy does not apply to lmstudio (it loads them)")
        self.kw = kw = engine_kwargs(self.config, self.model_ref)
        kw["exact_output"] = []  # OpenAIBackend's field: nothing can be asked of LM Studio
        t0 = time.perf_counter()
        card = aio.run(self._model_card())
        if card is None:
            _, listing = aio.run(self._get("/api/v0/models"))
            ids = [str(m.get("id")) for m in (listing or {}).get("data") or []]
            raise ModelLoadError(
                f"LM Studio at {kw['base_url']} has no model {kw['model']!r} (it has: "
                f"{', '.join(ids) or 'nothing'}); download it with `lms get` or set "
                "lmstudio.model"
            )
        if card.get("type") not in ("llm", "vlm"):
            raise ModelLoadError(
                f"LM Studio model {kw['model']!r} is a {card.get('type')}, not an llm"
            )
        if card.get("state") != "loaded" and kw["load"] == "lms":
            if not kw["lms"]:
                raise BackendUnavailable("lmstudio.load is lms but no `lms` CLI is on PATH")
            self._lms(*lms_load_args(kw))
            self._loaded_by_us = True
            card = aio.run(self._model_card()) or card
            if card.get("state") != "loaded":
                raise ModelLoadError(f"`lms load {kw['model']}` ran but the model is not loaded")
        tok_error = None
        try:
            self.tokenizer = load_tokenizer(self.model_ref)
        except Exception as exc:  # counts then come from the server's usage
            tok_error = error_line(exc, 300)
            log.warning(
                "lmstudio backend: no tokenizer for %s: %s", self.model_ref["ref"], tok_error
            )
        # Non-streamed probe: the documented response with stats, model_info and runtime (and,
        # with load: jit, the request that makes LM Studio load the model).
        probe = aio.run(self._request(Prompt(token_ids=[], text="Hello"), 2, GREEDY, False))
        if kw["load"] == "jit":
            card = aio.run(self._model_card()) or card
        load_time = time.perf_counter() - t0
        raw = probe["raw"]
        info = raw.get("model_info") or {}
        runtime = raw.get("runtime") or {}
        model = {
            "kind": self.model_ref["kind"],
            "ref": self.model_ref["ref"],
            "served_model": kw["model"],
            "model_card": card,
            "arch": info.get("arch") or card.get("arch"),
            "quantization": info.get("quant") or card.get("quantization"),
            "format": info.get("format") or card.get("compatibility_type"),
            "context_length": info.get("context_length"),
            "max_context_length": card.get("max_context_length"),
            "runtime": runtime,
            "loaded_with": "lms load" if self._loaded_by_us else kw["load"],
            "probe_stats": raw.get("stats"),
            "engine_args": {k: v for k, v in kw.items() if k != "exact_output"},
            "exact_output": EXACT_NOTE,
            "stats_note": STREAM_NOTE,
            "energy_scope": ENERGY_SCOPE,
            "tokenizer": None if self.tokenizer is None else self.tokenizer.source,
            "tokenizer_error": tok_error,
        }
        return LoadInfo(
            device=f"lmstudio {kw['base_url']} ({runtime.get('name', 'runtime unknown')})",
            dtype=str(model["quantization"] or "server-defined"),
            load_time_s=load_time,
            model=model,
            versions={
                "lmstudio_runtime": runtime.get("version"),
                **{name: library_version(name) for name in _VERSIONED},
            },
        )

    def unload(self) -> None:
        """``lms unload`` the model when lembench loaded it (or lmstudio.unload asks), then close
        the connection pool."""
        kw = self.kw
        if kw.get("unload") and kw.get("lms") and (self._loaded_by_us or kw["load"] == "jit"):
            try:
                self._lms(str(kw["lms"]), "unload", kw["model"])
            except ModelLoadError as exc:
                log.warning("lmstudio unload: %s", exc)
        super().unload()

    # -- generation -----------------------------------------------------------------------------
    async def _request(
        self, prompt: Prompt, max_new_tokens: int, sampling: Sampling, stream: bool
    ) -> dict[str, Any]:
        """One request: ``{"times", "text", "raw"}`` where raw holds the last seen ``stats``,
        ``usage``, ``model_info``, ``runtime`` and ``finish_reason``."""
        if self._client is None:
            self._client = self._new_client()
        kw, httpx = self.kw, self._httpx
        text = self._prompt_text(prompt)
        path, body = request_body(kw, text, max_new_tokens, sampling, stream)
        url = kw["base_url"] + path
        times: list[float] = []
        pieces: list[str] = []
        raw: dict[str, Any] = {}
        api = "chat" if kw["api"] == "chat" else "completions"
        t_start = time.perf_counter()
        try:
            async with asyncio.timeout(kw["timeout_s"]):
                async with self._client.stream("POST", url, json=body) as resp:
                    if resp.status_code != 200:
                        detail = (await resp.aread()).decode("utf-8", "replace")[:300]
                        raise RuntimeError(f"POST {path}: HTTP {resp.status_code}: {detail}")
                    if not stream:
                        data = json.loads(await resp.aread())
                        times.append(time.perf_counter())  # the whole answer arrives at once
                        piece, _, finish = parse_chunk(data, api)
                        if api == "chat":  # a non-streamed chat answer has message, not delta
                            piece = "".join(
                                (c.get("message") or {}).get("content") or ""
                                for c in data.get("choices") or []
                            )
                        pieces.append(piece)
                        raw.update(_extras(data), finish_reason=finish)
                    else:
                        async for line in resp.aiter_lines():
                            now = time.perf_counter()
                            if not line.startswith("data:"):
                                continue
                            payload = line[5:].strip()
                            if payload == "[DONE]":
                                break
                            chunk = json.loads(payload)
                            piece, _, finish = parse_chunk(chunk, api)
                            if piece:
                                times.append(now)
                                pieces.append(piece)
                            raw.update(_extras(chunk))
                            if finish:
                                raw["finish_reason"] = finish
        except TimeoutError as exc:
            raise RuntimeError(f"request to {url} timed out after {kw['timeout_s']} s") from exc
        except httpx.HTTPError as exc:
            raise RuntimeError(f"request to {url} failed: {error_line(exc, 300)}") from exc
        return {
            "t_start": t_start,
            "times": times,
            "text": "".join(pieces),
            "prompt": text,
            "raw": raw,
        }

    async def agenerate(
        self, prompt: Prompt, max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> Generation:
        """One request (streamed unless ``lmstudio.stream`` is false). ``engine_stats``: LM
        Studio's ``stats`` with the finish reason, when the response carried them."""
        r = await self._request(prompt, max_new_tokens, sampling, self.kw["stream"])
        raw = r["raw"]
        if raw.get("finish_reason") is None:
            self.unfinished += 1
        tokens_out, tokens_in, source = self._count(
            raw.get("usage"), r["text"], r["prompt"], len(r["times"])
        )
        self.count_sources[source] += 1
        if exact and tokens_out != max_new_tokens:
            self.exact_violations += 1
        stats = raw.get("stats") or None
        if stats is not None:
            stats = {**stats, "finish_reason": raw.get("finish_reason")}
        return Generation(
            tokens_in, tokens_out, r["t_start"], r["times"], r["text"], engine_stats=stats
        )


def _extras(obj: dict[str, Any]) -> dict[str, Any]:
    """The LM Studio fields of a response or chunk that are present (stats, usage, ...)."""
    return {k: obj[k] for k in ("stats", "usage", "model_info", "runtime") if obj.get(k)}
