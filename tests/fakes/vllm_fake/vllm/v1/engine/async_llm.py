"""Fake vllm.v1.engine.async_llm.AsyncLLM (vLLM 0.11.0 signatures).

Like the real one, a background output-handler task bound to the event loop of the first
``generate`` call pulls engine-core outputs and feeds per-request queues; DELTA outputs that pile up
before the consumer reads them are merged into one chunk (RequestOutputCollector). ``generate``
from another loop fails, as the real handler task cannot serve it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from vllm import _sim
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.outputs import RequestOutput


class AsyncLLM:
    def __init__(self, engine_args: AsyncEngineArgs) -> None:
        self.model_config, self.tokenizer = _sim.start(engine_args, "async")
        self.core = _sim.EngineCore(engine_args, self.model_config, self.tokenizer)
        self.queues: dict[str, list[RequestOutput]] = {}
        self.events: dict[str, asyncio.Event] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.output_handler: asyncio.Task | None = None
        self.wake: asyncio.Event | None = None
        _sim.LIVE.append(self)
        try:
            asyncio.get_running_loop()
            self._run_output_handler()
        except RuntimeError:
            pass

    @classmethod
    def from_engine_args(
        cls,
        engine_args: AsyncEngineArgs,
        start_engine_loop: bool = True,
        usage_context: Any = None,
        stat_loggers: Any = None,
    ) -> AsyncLLM:
        if not isinstance(engine_args, AsyncEngineArgs):
            raise TypeError("engine_args must be AsyncEngineArgs")
        return cls(engine_args)

    def _run_output_handler(self) -> None:
        loop = asyncio.get_running_loop()
        if self.output_handler is not None:
            if loop is not self.loop:
                raise RuntimeError("AsyncLLM output handler is attached to a different loop")
            return
        self.loop, self.wake = loop, asyncio.Event()
        self.output_handler = loop.create_task(self._handle())

    async def _handle(self) -> None:
        while True:
            if not self.core.unfinished():
                self.wake.clear()
                await self.wake.wait()
            for out in self.core.step():
                pending = self.queues.get(out.request_id)
                if pending is None:
                    continue
                if pending and pending[-1].outputs[0].finish_reason is None:
                    last = pending[-1]  # merge DELTA chunks the consumer has not read yet
                    last.outputs[0].token_ids = [
                        *last.outputs[0].token_ids,
                        *out.outputs[0].token_ids,
                    ]
                    last.outputs[0].text += out.outputs[0].text
                    last.outputs[0].finish_reason = out.outputs[0].finish_reason
                    last.finished = out.finished
                else:
                    pending.append(out)
                self.events[out.request_id].set()
            await asyncio.sleep(_sim.STEP_SECONDS)

    async def generate(
        self,
        prompt: Any,
        sampling_params: Any,
        request_id: str,
        lora_request: Any = None,
        trace_headers: Any = None,
        priority: int = 0,
        data_parallel_rank: int | None = None,
    ) -> AsyncGenerator[RequestOutput, None]:
        if self.core.dead:
            from vllm.v1.engine.exceptions import EngineDeadError

            raise EngineDeadError()
        self._run_output_handler()
        self.core.add(request_id, prompt, sampling_params)
        self.queues[request_id], self.events[request_id] = [], asyncio.Event()
        self.wake.set()
        finished = False
        try:
            while not finished:
                if not self.queues[request_id]:
                    self.events[request_id].clear()
                    await self.events[request_id].wait()
                out = self.queues[request_id].pop(0)
                finished = out.finished
                yield out
        finally:
            self.queues.pop(request_id, None)
            self.events.pop(request_id, None)
            self.core.abort([request_id])

    def shutdown(self) -> None:
        self.core.dead = True
        if self.output_handler is not None:
            self.output_handler.cancel()
        if self in _sim.LIVE:
            _sim.LIVE.remove(self)
