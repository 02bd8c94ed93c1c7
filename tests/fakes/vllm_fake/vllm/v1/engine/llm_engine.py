"""Fake vllm.v1.engine.llm_engine.LLMEngine (the V1 offline engine, methods of vLLM 0.11.0)."""

from __future__ import annotations

from typing import Any

from vllm import _sim
from vllm.engine.arg_utils import EngineArgs


class _CoreClient:
    """Stands in for SyncMPClient: ``shutdown()`` ends the engine-core process."""

    def __init__(self, engine: LLMEngine) -> None:
        self._engine = engine

    def shutdown(self) -> None:
        self._engine.core.dead = True
        if self._engine in _sim.LIVE:
            _sim.LIVE.remove(self._engine)


class LLMEngine:
    def __init__(self, engine_args: EngineArgs) -> None:
        self.model_config, self.tokenizer = _sim.start(engine_args, "offline")
        self.core = _sim.EngineCore(engine_args, self.model_config, self.tokenizer)
        self.engine_core = _CoreClient(self)
        _sim.LIVE.append(self)

    @classmethod
    def from_engine_args(
        cls,
        engine_args: EngineArgs,
        usage_context: Any = None,
        stat_loggers: Any = None,
        enable_multiprocessing: bool = False,
    ) -> LLMEngine:
        if not isinstance(engine_args, EngineArgs):
            raise TypeError("engine_args must be EngineArgs")
        return cls(engine_args)

    def get_num_unfinished_requests(self) -> int:
        return len(self.core.requests)

    def has_unfinished_requests(self) -> bool:
        return self.core.unfinished()

    def abort_request(self, request_ids: list[str]) -> None:
        self.core.abort(request_ids)

    def add_request(
        self,
        request_id: str,
        prompt: Any,
        params: Any,
        arrival_time: float | None = None,
        lora_request: Any = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        trace_headers: Any = None,
        priority: int = 0,
    ) -> None:
        self.core.add(request_id, prompt, params)

    def step(self) -> list[Any]:
        if self.core.dead:
            from vllm.v1.engine.exceptions import EngineDeadError

            raise EngineDeadError()
        return self.core.step()

    def get_tokenizer(self) -> Any:
        if self.tokenizer is None:
            raise ValueError("Unable to get tokenizer because skip_tokenizer_init is True")
        return self.tokenizer
