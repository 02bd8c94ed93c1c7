"""The suite's ``ollama:`` block and the pure mapping of an experiment onto Ollama's native API
request bodies (``/api/generate``, ``/api/chat``), importable without httpx.

Field names are those of Ollama's docs/api.md (github:ollama/ollama): request ``options`` are the
Modelfile parameters (num_ctx, num_predict, num_thread, num_gpu, num_batch, seed, temperature,
top_k, top_p, min_p, repeat_penalty), ``keep_alive`` a duration string or seconds, ``raw`` skips
the prompt template. The final object of a stream carries ``total_duration``, ``load_duration``,
``prompt_eval_count``, ``prompt_eval_duration``, ``eval_count``, ``eval_duration`` (nanoseconds)
and ``done_reason``.
"""

from __future__ import annotations

from typing import Any

from harness.backends.base import Sampling

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
DEFAULT_TIMEOUT_S = 600.0
#: The final stream object's own account of the request, stored per request (engine_stats).
STAT_KEYS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
    "done_reason",
)
#: Engine options passed through to the request's ``options`` as they are.
PASSTHROUGH = ("num_ctx", "num_thread", "num_gpu", "num_batch")
#: Why lengths are not exact: said in every result's provenance (and the exact_output_violated
#: warning says when it happened).
EXACT_NOTE = (
    "Ollama cannot force an exact output length (no ignore_eos or EOS logit bias in its API): "
    "num_predict caps the length and raw synthetic prompts rarely stop early; eval_count is the "
    "length really produced"
)


def engine_kwargs(config: dict[str, Any], model_ref: dict[str, Any]) -> dict[str, Any]:
    """The effective client options (defaults filled) from ``config["ollama"]``."""
    opts = dict(config.get("ollama") or {})
    threads = opts.get("num_thread", config.get("threads"))
    return {
        "base_url": str(opts.get("base_url", DEFAULT_BASE_URL)).rstrip("/"),
        "model": opts.get("model") or model_ref["ref"],
        "api": opts.get("api", "generate"),
        "raw": bool(opts.get("raw", True)),
        "keep_alive": opts.get("keep_alive", "30m"),
        "pull": bool(opts.get("pull", False)),
        "placement": opts.get("placement", "any"),
        "unload": bool(opts.get("unload", True)),
        "timeout_s": float(opts.get("timeout_s", DEFAULT_TIMEOUT_S)),
        "options": {
            k: v
            for k, v in {**{k: opts.get(k) for k in PASSTHROUGH}, "num_thread": threads}.items()
            if v is not None
        },
    }


def request_options(kw: dict[str, Any], max_new_tokens: int, sampling: Sampling) -> dict[str, Any]:
    """The request's ``options``: the load-time ones plus num_predict and the sampling fields.
    Greedy is temperature 0 (Ollama's llama.cpp runner then takes the argmax); the seed is always
    sent so sampled runs repeat."""
    out: dict[str, Any] = {**kw["options"], "num_predict": max_new_tokens, "seed": sampling.seed}
    if sampling.do_sample and sampling.temperature > 0:
        out.update(
            temperature=sampling.temperature,
            top_k=sampling.top_k,  # 0 switches top-k off in llama.cpp's sampler
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            repeat_penalty=sampling.repetition_penalty,
        )
    else:
        out.update(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
    return out


def request_body(
    kw: dict[str, Any], text: str, max_new_tokens: int, sampling: Sampling
) -> tuple[str, dict[str, Any]]:
    """``(path, body)`` of one streamed request."""
    body: dict[str, Any] = {
        "model": kw["model"],
        "stream": True,
        "keep_alive": kw["keep_alive"],
        "options": request_options(kw, max_new_tokens, sampling),
    }
    if kw["api"] == "chat":
        body["messages"] = [{"role": "user", "content": text}]
        return "/api/chat", body
    body.update(prompt=text, raw=kw["raw"])
    return "/api/generate", body


def placement_of(entry: dict[str, Any]) -> dict[str, Any]:
    """Where ``/api/ps`` says a loaded model sits: bytes in total and in GPU memory, and the GPU
    share (Ollama's ``size_vram`` of ``size``)."""
    size, vram = int(entry.get("size") or 0), int(entry.get("size_vram") or 0)
    share = vram / size if size else 0.0
    where = "gpu" if size and vram >= size else "cpu" if vram == 0 else "split"
    return {"size": size, "size_vram": vram, "gpu_share": round(share, 4), "where": where}


# The suite's `ollama:` block.
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "Ollama through its native API (/api/generate or /api/chat, streamed), with the "
        "server's own timings per request. Run the harness on the server's host: the meters "
        "see this machine."
    ),
    "properties": {
        "base_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "Server URL without /api (default http://127.0.0.1:11434).",
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "description": "Ollama model name, e.g. smollm2:135m (default: the model reference).",
        },
        "api": {
            "enum": ["generate", "chat"],
            "description": "/api/generate (default; raw prompt) or /api/chat (one user message).",
        },
        "raw": {
            "type": "boolean",
            "description": "generate: send the prompt without the model's template (default true).",
        },
        "keep_alive": {
            "type": ["string", "number"],
            "description": "How long the model stays loaded after a request (default 30m).",
        },
        "pull": {
            "type": "boolean",
            "description": "Pull the model (/api/pull) when the server lacks it (default false).",
        },
        "placement": {
            "enum": ["any", "gpu", "cpu"],
            "description": (
                "Where /api/ps must show the model after loading: all in GPU memory, all on the "
                "CPU, or anything (default; the split is recorded either way)."
            ),
        },
        "unload": {
            "type": "boolean",
            "description": "Unload the model (keep_alive 0) after the load group (default true).",
        },
        "num_ctx": {"type": "integer", "minimum": 1, "description": "Context window in tokens."},
        "num_thread": {"type": "integer", "minimum": 1, "description": "CPU threads."},
        "num_gpu": {
            "type": "integer",
            "minimum": 0,
            "description": "Layers offloaded to the GPU (0: CPU only).",
        },
        "num_batch": {"type": "integer", "minimum": 1, "description": "Prompt batch size."},
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Per-request timeout (default 600).",
        },
    },
}
