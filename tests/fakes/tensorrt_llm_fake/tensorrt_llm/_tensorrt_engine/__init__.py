"""Fake of ``tensorrt_llm._tensorrt_engine``: the TensorRT-engine flow's LLM (``_TrtLLM``)."""

from tensorrt_llm.llmapi.llm import _TrtLLM as LLM

__all__ = ["LLM"]
