"""The suite's ``lmstudio:`` block and the pure mapping onto LM Studio's native REST API v0
(``/api/v0/*``), importable without httpx.

Source: LM Studio's "REST API v0" page (lmstudio.ai/docs/developer/rest/endpoints; the file
1_developer/2_rest/endpoints.mdx in github:lmstudio-ai/docs) and the ``lms load`` page
(lmstudio.ai/docs/cli/load): ``GET /api/v0/models[/{model}]`` gives ``type``, ``arch``,
``compatibility_type``, ``quantization``, ``state`` (loaded / not-loaded) and
``max_context_length``; ``POST /api/v0/completions`` and ``/api/v0/chat/completions`` answer with
OpenAI-shaped ``choices`` and ``usage`` plus ``stats`` (``tokens_per_second``,
``time_to_first_token``, ``generation_time``, ``stop_reason``), ``model_info`` (``arch``,
``quant``, ``format``, ``context_length``) and ``runtime`` (``name``, ``version``).
``lms load <model> [--context-length N] [--gpu 0-1|off|max]`` and ``lms unload <model>`` manage
what is in memory.
"""

from __future__ import annotations

import shutil
from typing import Any

from harness.backends.base import Sampling

DEFAULT_BASE_URL = "http://127.0.0.1:1234"
DEFAULT_TIMEOUT_S = 600.0
EXACT_NOTE = (
    "LM Studio's REST API cannot force an exact output length (no ignore_eos): max_tokens caps "
    "it and raw synthetic prompts rarely stop early; the length really produced is counted"
)
STREAM_NOTE = (
    "streamed responses carry LM Studio's stats only where the server sends them (versions up to "
    "at least 0.3.16 did not: lmstudio-ai/lmstudio-bug-tracker#676); stream: false always gets "
    "them, but then the client sees the whole answer at once (its TTFT is the full latency)"
)


def engine_kwargs(
    config: dict[str, Any], model_ref: dict[str, Any], which: Any = shutil.which
) -> dict[str, Any]:
    """The effective client options (defaults filled) from ``config["lmstudio"]``; ``which``
    finds the ``lms`` CLI (``load: auto`` uses it when it is on PATH, else LM Studio's
    just-in-time loading on the first request)."""
    opts = dict(config.get("lmstudio") or {})
    lms = which("lms")
    load = opts.get("load", "auto")
    if load == "auto":
        load = "lms" if lms else "jit"
    return {
        "base_url": str(opts.get("base_url", DEFAULT_BASE_URL)).rstrip("/"),
        "model": opts.get("model") or model_ref["ref"],
        "api": opts.get("api", "completions"),
        "stream": bool(opts.get("stream", True)),
        "load": load,
        "lms": lms,
        "context_length": opts.get("context_length"),
        "gpu": opts.get("gpu"),
        "unload": bool(opts.get("unload", True)),
        "timeout_s": float(opts.get("timeout_s", DEFAULT_TIMEOUT_S)),
    }


def lms_load_args(kw: dict[str, Any]) -> list[str]:
    """``lms load`` command line for the configured model (flags of lmstudio.ai/docs/cli/load)."""
    args = [str(kw["lms"] or "lms"), "load", kw["model"]]
    if kw["context_length"]:
        args += ["--context-length", str(kw["context_length"])]
    if kw["gpu"] is not None:
        args += ["--gpu", str(kw["gpu"])]
    return args


def request_body(
    kw: dict[str, Any], text: str, max_new_tokens: int, sampling: Sampling, stream: bool
) -> tuple[str, dict[str, Any]]:
    """``(path, body)`` of one request: greedy is temperature 0; the seed is always sent."""
    body: dict[str, Any] = {
        "model": kw["model"],
        "max_tokens": max_new_tokens,
        "stream": stream,
        "seed": sampling.seed,
    }
    if sampling.do_sample and sampling.temperature > 0:
        body.update(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repeat_penalty=sampling.repetition_penalty,
        )
    else:
        body.update(temperature=0.0, top_p=1.0, top_k=1)
    if kw["api"] == "chat":
        body["messages"] = [{"role": "user", "content": text}]
        return "/api/v0/chat/completions", body
    body["prompt"] = text
    return "/api/v0/completions", body


# The suite's `lmstudio:` block.
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "LM Studio through its native REST API (/api/v0): per-response stats, the loaded "
        "model's quantisation/arch/context, load and unload with lms. Run the harness on the "
        "server's host: the meters see this machine."
    ),
    "properties": {
        "base_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "Server URL without /api/v0 (default http://127.0.0.1:1234).",
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "description": "LM Studio model key (default: the experiment's model reference).",
        },
        "api": {
            "enum": ["completions", "chat"],
            "description": "/api/v0/completions (default) or /api/v0/chat/completions.",
        },
        "stream": {
            "type": "boolean",
            "description": (
                "Stream tokens (default true: client-side TTFT/ITL); false gets LM Studio's "
                "stats on every response but only the full latency on the client side."
            ),
        },
        "load": {
            "enum": ["auto", "lms", "jit"],
            "description": (
                "How the model is loaded: lms (`lms load`), jit (LM Studio loads on the first "
                "request), auto (lms when on PATH; default)."
            ),
        },
        "context_length": {
            "type": "integer",
            "minimum": 1,
            "description": "lms load --context-length.",
        },
        "gpu": {
            "type": ["string", "number"],
            "pattern": "^(off|max)$",
            "minimum": 0,
            "maximum": 1,
            "description": "lms load --gpu: share offloaded to the GPU (0-1, off, max).",
        },
        "unload": {
            "type": "boolean",
            "description": "lms unload the model when the load group ends (default true).",
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Per-request timeout (default 600).",
        },
    },
}
