"""Fake vllm.inputs: TokensPrompt is a TypedDict in vLLM (vllm/inputs/data.py)."""

from typing import TypedDict


class TokensPrompt(TypedDict, total=False):
    prompt_token_ids: list[int]
    token_type_ids: list[int]
    multi_modal_data: object
    mm_processor_kwargs: dict
    cache_salt: str
