"""One asyncio event loop per harness process, running in a daemon thread.

Serving backends keep loop-bound state for the whole process (an HTTP connection pool, vLLM's
``AsyncLLM`` output handler). ``asyncio.run`` would close the loop after every call and break that
state between warmup and the measured window, so every coroutine of the harness runs here instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The process-wide loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="lembench-aio", daemon=True)
            _thread.start()
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the process-wide loop and return its result (exceptions propagate).

    Must not be called from the loop's own thread (it would wait for itself)."""
    target = loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("harness.backends.aio.run called from inside the event loop")
    return asyncio.run_coroutine_threadsafe(coro, target).result(timeout)


def shutdown() -> None:
    """Stop the loop and its thread (at process end; tests use it to start clean)."""
    global _loop, _thread
    with _lock:
        if _loop is None:
            return
        _loop.call_soon_threadsafe(_loop.stop)
        if _thread is not None:
            _thread.join(timeout=5)
        _loop.close()
        _loop, _thread = None, None
