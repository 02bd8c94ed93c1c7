"""Instrumentation of the fake (not part of the real library): what was built, what failed."""

from __future__ import annotations

from typing import Any

#: Every LLM constructed: (flow, validated args).
constructed: list[tuple[str, Any]] = []
#: Engines saved with LLM.save (paths).
saved: list[str] = []
#: Sampling params of every submitted request.
requests: list[Any] = []
#: Set by a test: raised by the next LLM construction (e.g. a CUDA OOM RuntimeError).
fail_on_init: BaseException | None = None
#: Set by a test: raised by the next generate_async.
fail_on_generate: BaseException | None = None
#: Token the fake model emits as EOS after this many tokens (None: never).
eos_after: int | None = None


def reset() -> None:
    """Forget everything (each test starts clean)."""
    global fail_on_init, fail_on_generate, eos_after
    constructed.clear()
    saved.clear()
    requests.clear()
    fail_on_init = fail_on_generate = None
    eos_after = None
