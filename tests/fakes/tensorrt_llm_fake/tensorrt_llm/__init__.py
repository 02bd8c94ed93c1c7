"""Fake of TensorRT-LLM 1.0's Python package for lembench's unit tests.

Mirrors the documented LLM API surface the tensorrt-llm backend uses: ``tensorrt_llm.LLM`` (PyTorch
flow, TorchLlmArgs), ``tensorrt_llm._tensorrt_engine.LLM`` (TensorRT flow, TrtLlmArgs),
``tensorrt_llm.llmapi`` (BuildConfig, QuantConfig, QuantAlgo, KvCacheConfig, SamplingParams).
Arguments are validated the way the real classes do: LlmArgs are pydantic models with
``extra="forbid"``, SamplingParams is a ``kw_only`` slots dataclass (unknown names: TypeError).
No model runs: a "model" emits token ids deterministically from the prompt.
"""

from tensorrt_llm.llmapi import BuildConfig, SamplingParams
from tensorrt_llm.llmapi.llm import LLM

__version__ = "1.0.0"

__all__ = ["LLM", "BuildConfig", "SamplingParams", "__version__"]
