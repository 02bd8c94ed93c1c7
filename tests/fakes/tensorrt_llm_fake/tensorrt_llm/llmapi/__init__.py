"""Fake ``tensorrt_llm.llmapi``: configuration classes with the real signatures (1.0)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator


class QuantAlgo(StrEnum):
    """Subset of tensorrt_llm.quantization.QuantAlgo (a StrEnum of algorithm names)."""

    W8A16 = "W8A16"
    W4A16 = "W4A16"
    W4A16_AWQ = "W4A16_AWQ"
    W4A8_AWQ = "W4A8_AWQ"
    W8A8_SQ_PER_CHANNEL = "W8A8_SQ_PER_CHANNEL"
    FP8 = "FP8"
    FP8_BLOCK_SCALES = "FP8_BLOCK_SCALES"
    INT8 = "INT8"
    NVFP4 = "NVFP4"
    NO_QUANT = "NO_QUANT"


@dataclass
class QuantConfig:
    """Mirror of tensorrt_llm.models.modeling_utils.QuantConfig (a dataclass)."""

    quant_algo: QuantAlgo | None = None
    kv_cache_quant_algo: QuantAlgo | None = None
    group_size: int = 128
    smoothquant_val: float = 0.5
    clamp_val: list | None = None
    use_meta_recipe: bool = False
    has_zero_point: bool = False
    pre_quant_scale: bool = False
    exclude_modules: list | None = None

    def __post_init__(self) -> None:
        for name in ("quant_algo", "kv_cache_quant_algo"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, QuantAlgo):
                raise TypeError(f"{name} must be a QuantAlgo, got {value!r}")


@dataclass
class BuildConfig:
    """Mirror of tensorrt_llm.builder.BuildConfig's size limits (a dataclass in 1.0)."""

    max_input_len: int = 1024
    max_seq_len: int | None = None
    max_batch_size: int = 2048
    max_beam_width: int = 1
    max_num_tokens: int = 8192
    opt_num_tokens: int | None = None
    strongly_typed: bool = True

    def __post_init__(self) -> None:
        for name in ("max_input_len", "max_batch_size", "max_beam_width", "max_num_tokens"):
            if not isinstance(getattr(self, name), int):
                raise TypeError(f"BuildConfig.{name} must be an int")


class KvCacheConfig(BaseModel):
    """Mirror of tensorrt_llm.llmapi.KvCacheConfig (pydantic, unknown fields rejected)."""

    model_config = ConfigDict(extra="forbid")

    enable_block_reuse: bool = True
    max_tokens: int | None = None
    free_gpu_memory_fraction: float | None = None
    host_cache_size: int | None = None
    onboard_blocks: bool = True
    enable_partial_reuse: bool = True
    dtype: str = "auto"

    @field_validator("free_gpu_memory_fraction")
    @classmethod
    def _fraction(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 1:
            raise ValueError("kv_cache_config.free_gpu_memory_fraction must be between 0 and 1")
        return v

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        if v.lower() not in ("auto", "fp8", "nvfp4", "float16", "bfloat16", "float32"):
            raise ValueError('kv_cache_config.dtype must be one of "auto", "fp8", "nvfp4"')
        return v.lower()


from tensorrt_llm.llmapi.sampling import SamplingParams  # noqa: E402

__all__ = [
    "BuildConfig",
    "KvCacheConfig",
    "Literal",
    "QuantAlgo",
    "QuantConfig",
    "SamplingParams",
]
