"""Fake vllm.entrypoints.llm.LLM: the constructor signature of vLLM 0.11.0.

Named parameters as in the real ``LLM.__init__``; everything else goes through ``**kwargs`` into
``EngineArgs``, whose unknown names raise TypeError exactly as in the real constructor."""

from __future__ import annotations

from typing import Any

from vllm.engine.arg_utils import EngineArgs
from vllm.v1.engine.llm_engine import LLMEngine


class LLM:
    def __init__(
        self,
        model: str,
        *,
        runner: str = "auto",
        convert: str = "auto",
        tokenizer: str | None = None,
        tokenizer_mode: str = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        allowed_local_media_path: str = "",
        allowed_media_domains: list[str] | None = None,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        quantization: str | None = None,
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        seed: int | None = None,
        gpu_memory_utilization: float = 0.9,
        swap_space: float = 4,
        cpu_offload_gb: float = 0,
        enforce_eager: bool = False,
        disable_custom_all_reduce: bool = False,
        hf_token: Any = None,
        hf_overrides: Any = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        pooler_config: Any = None,
        override_pooler_config: Any = None,
        structured_outputs_config: Any = None,
        kv_cache_memory_bytes: int | None = None,
        compilation_config: Any = None,
        logits_processors: Any = None,
        **kwargs: Any,
    ) -> None:
        if "disable_log_stats" not in kwargs:
            kwargs["disable_log_stats"] = True
        engine_args = EngineArgs(
            model=model, runner=runner, convert=convert, tokenizer=tokenizer,
            tokenizer_mode=tokenizer_mode, skip_tokenizer_init=skip_tokenizer_init,
            trust_remote_code=trust_remote_code,
            allowed_local_media_path=allowed_local_media_path,
            allowed_media_domains=allowed_media_domains,
            tensor_parallel_size=tensor_parallel_size, dtype=dtype, quantization=quantization,
            revision=revision, tokenizer_revision=tokenizer_revision, seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_memory_bytes=kv_cache_memory_bytes, swap_space=swap_space,
            cpu_offload_gb=cpu_offload_gb, enforce_eager=enforce_eager,
            disable_custom_all_reduce=disable_custom_all_reduce, hf_token=hf_token,
            hf_overrides=hf_overrides or {}, mm_processor_kwargs=mm_processor_kwargs,
            pooler_config=pooler_config, override_pooler_config=override_pooler_config,
            structured_outputs_config=structured_outputs_config,
            compilation_config=compilation_config, logits_processors=logits_processors,
            **kwargs,
        )  # fmt: skip
        self.llm_engine = LLMEngine.from_engine_args(engine_args=engine_args)

    def get_tokenizer(self) -> Any:
        return self.llm_engine.get_tokenizer()
