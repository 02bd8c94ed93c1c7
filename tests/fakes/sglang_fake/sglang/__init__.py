"""Fake ``sglang`` (v0.5 API): ``Engine`` only, see the README next to this package."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sglang import _sim

__version__ = "0.5.13.post1"
LIVE: list[Engine] = []  # engines holding the fake GPU
_ids = itertools.count()


class FakeTokenizer:
    """Word-level, HF-tokenizer shaped (0 pad, 1 bos, 2 eos)."""

    all_special_ids = [0, 1, 2]  # noqa: RUF012

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [3 + sum(map(ord, w)) % (_sim.VOCAB - 3) for w in text.split()]
        return ([1] if add_special_tokens else []) + ids

    def get_vocab(self) -> dict[str, int]:
        return {f"<{i}>": i for i in range(_sim.VOCAB)}

    def get_added_vocab(self) -> dict[str, int]:
        return {}


class HFConfig(SimpleNamespace):
    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


TINY = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": _sim.VOCAB,
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 128, "bos_token_id": 1,
    "eos_token_id": 2, "tie_word_embeddings": True,
}  # fmt: skip


class Engine:
    """``sglang.Engine(**kwargs)``: kwargs are ServerArgs fields."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - _sim.SERVER_ARGS
        if unknown:
            raise TypeError(f"ServerArgs.__init__() got an unexpected keyword argument "
                            f"{sorted(unknown)[0]!r}")  # fmt: skip
        if "model_path" not in kwargs:
            raise TypeError("ServerArgs.__init__() missing 1 required argument: 'model_path'")
        if LIVE:
            raise RuntimeError("CUDA out of memory. Tried to allocate the KV cache pool")
        if kwargs["model_path"].startswith("missing"):
            raise OSError(f"{kwargs['model_path']} is not a local folder or a Hub id")
        self.server_args = SimpleNamespace(**kwargs)
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = asyncio.new_event_loop()
        skip = kwargs.get("skip_tokenizer_init", False)
        folder = Path(kwargs["model_path"])  # a local folder's config.json, else the tiny model
        config = json.loads((folder / "config.json").read_text()) if folder.is_dir() else TINY
        self.tokenizer_manager = SimpleNamespace(
            tokenizer=None if skip else FakeTokenizer(),
            model_config=SimpleNamespace(hf_config=HFConfig(**config)),
        )
        self.interval = int(kwargs.get("stream_interval", 1))
        LIVE.append(self)

    def _requests(self, input_ids: Any, sampling_params: Any) -> list[tuple[list[int], dict]]:
        if input_ids is None:
            raise ValueError("Either text or input_ids should be provided.")
        rows = input_ids if input_ids and isinstance(input_ids[0], list) else [input_ids]
        params = sampling_params or {}
        per = params if isinstance(params, list) else [params] * len(rows)
        return [(list(r), dict(p)) for r, p in zip(rows, per, strict=True)]

    async def _one(self, ids: list[int], params: dict) -> AsyncIterator[dict[str, Any]]:
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("Task got Future attached to a different loop")
        async for chunk in _sim.stream(f"rid-{next(_ids)}", ids, params, self.interval):
            yield chunk

    async def _last(self, ids: list[int], params: dict) -> dict[str, Any]:
        chunks = [chunk async for chunk in self._one(ids, params)]
        return chunks[-1]

    def generate(
        self, prompt: Any = None, sampling_params: Any = None, input_ids: Any = None,
        stream: bool = False, **kwargs: Any,
    ) -> dict | list[dict] | Iterator[dict]:  # fmt: skip
        requests = self._requests(input_ids, sampling_params)
        if stream:
            gen = self._one(*requests[0])

            def wrapper() -> Iterator[dict]:
                while True:
                    try:
                        yield self.loop.run_until_complete(gen.__anext__())
                    except StopAsyncIteration:
                        break

            return wrapper()

        async def all_of() -> list[dict]:
            return list(await asyncio.gather(*(self._last(i, p) for i, p in requests)))

        out = self.loop.run_until_complete(all_of())
        return out if len(requests) > 1 else out[0]

    async def async_generate(
        self, prompt: Any = None, sampling_params: Any = None, input_ids: Any = None,
        stream: bool = False, **kwargs: Any,
    ) -> dict | AsyncIterator[dict]:  # fmt: skip
        (ids, params), *_ = self._requests(input_ids, sampling_params)
        if stream is True:
            return self._one(ids, params)
        return await self._last(ids, params)

    def shutdown(self) -> None:
        if self in LIVE:
            LIVE.remove(self)
