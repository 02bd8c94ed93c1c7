"""The suite's ``openai:`` block of the OpenAI-compatible backend: its JSON Schema, part of the
backend's description (``harness.contract.descriptions``). Kept beside the backend module so
that module stays about the engine."""

from __future__ import annotations

from typing import Any

# The suite's `openai:` block.
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "An OpenAI-compatible server (Ollama, LM Studio, llama-server, vLLM serve, TGI). The "
        "meters see the machine the harness runs on, not the server process: run the harness on "
        "the server's host."
    ),
    "properties": {
        "base_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "Server URL up to and including /v1, e.g. http://127.0.0.1:8000/v1.",
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "description": (
                "Model name the server knows (default: the experiment's model reference)."
            ),
        },
        "api": {
            "enum": ["completions", "chat"],
            "description": (
                "Endpoint: /completions with the prompt as text (default) or /chat/completions "
                "with one user message."
            ),
        },
        "api_key_env": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "description": (
                "Name of the environment variable holding the API key (the key itself never goes"
                " in a suite)."
            ),
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Per-request timeout (default 600).",
        },
        "exact_output": {
            "enum": ["ignore_eos", "logit_bias", "min_tokens"],
            "description": (
                "How exact output lengths are asked for: ignore_eos (vLLM, llama-server), "
                "logit_bias on the EOS token (OpenAI standard), min_tokens (vLLM). Default "
                "ignore_eos plus logit_bias."
            ),
        },
        "stream_usage": {
            "type": "boolean",
            "description": (
                "Ask for usage in the stream (stream_options.include_usage; default true)."
            ),
        },
    },
    "required": ["base_url"],
}
