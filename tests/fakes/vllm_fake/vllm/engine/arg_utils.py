"""Fake vllm.engine.arg_utils: EngineArgs with the field names of vLLM 0.11.0.

The names are those of the real dataclass (vllm/engine/arg_utils.py of the 0.11.0 wheel), so an
argument the real engine does not know fails here with the same TypeError
("__init__() got an unexpected keyword argument"). ``__post_init__`` checks the values lembench
passes the way vLLM's config classes do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODEL_DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")  # ModelDType
CACHE_DTYPES = ("auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc")  # CacheDType
LOAD_FORMATS = ("auto", "bitsandbytes", "dummy", "fastsafetensors", "gguf", "mistral", "npcache",
                "pt", "runai_streamer", "runai_streamer_sharded", "safetensors", "sharded_state",
                "tensorizer")  # fmt: skip
QUANTIZATION_METHODS = ("awq", "deepspeedfp", "tpu_int8", "fp8", "ptpc_fp8", "fbgemm_fp8",
                        "modelopt", "modelopt_fp4", "bitblas", "gguf", "gptq_marlin_24",
                        "gptq_marlin", "gptq_bitblas", "awq_marlin", "gptq", "compressed-tensors",
                        "bitsandbytes", "hqq", "experts_int8", "ipex", "quark", "moe_wna16",
                        "torchao", "auto-round", "rtn", "inc", "mxfp4", "petit_nvfp4")  # fmt: skip
_POSITIVE_INTS = ("max_model_len", "max_num_seqs", "max_num_batched_tokens",
                  "tensor_parallel_size", "pipeline_parallel_size")  # fmt: skip
_BOOLS = ("enable_prefix_caching", "enable_chunked_prefill", "enforce_eager",
          "skip_tokenizer_init", "disable_log_stats")  # fmt: skip


@dataclass
class EngineArgs:
    """Arguments for vLLM engine."""

    model: Any = "facebook/opt-125m"
    served_model_name: Any = None
    tokenizer: Any = None
    hf_config_path: Any = None
    runner: Any = None
    convert: Any = None
    task: Any = None
    skip_tokenizer_init: Any = False
    enable_prompt_embeds: Any = None
    tokenizer_mode: Any = "auto"
    trust_remote_code: Any = False
    allowed_local_media_path: Any = None
    allowed_media_domains: Any = None
    download_dir: Any = None
    safetensors_load_strategy: Any = None
    load_format: Any = "auto"
    config_format: Any = None
    dtype: Any = "auto"
    kv_cache_dtype: Any = "auto"
    seed: Any = None
    max_model_len: Any = None
    cuda_graph_sizes: Any = None
    distributed_executor_backend: Any = None
    pipeline_parallel_size: Any = 1
    tensor_parallel_size: Any = 1
    decode_context_parallel_size: Any = None
    data_parallel_size: Any = None
    data_parallel_rank: Any = None
    data_parallel_start_rank: Any = None
    data_parallel_size_local: Any = None
    data_parallel_address: Any = None
    data_parallel_rpc_port: Any = None
    data_parallel_hybrid_lb: Any = None
    data_parallel_backend: Any = None
    enable_expert_parallel: Any = None
    enable_dbo: Any = None
    dbo_decode_token_threshold: Any = None
    dbo_prefill_token_threshold: Any = None
    eplb_config: Any = None
    enable_eplb: Any = None
    expert_placement_strategy: Any = None
    _api_process_count: Any = None
    _api_process_rank: Any = None
    num_redundant_experts: Any = None
    eplb_window_size: Any = None
    eplb_step_interval: Any = None
    eplb_log_balancedness: Any = None
    max_parallel_loading_workers: Any = None
    block_size: Any = None
    enable_prefix_caching: Any = None
    prefix_caching_hash_algo: Any = None
    disable_sliding_window: Any = None
    disable_cascade_attn: Any = None
    swap_space: Any = 4
    cpu_offload_gb: Any = 0
    gpu_memory_utilization: Any = 0.9
    kv_cache_memory_bytes: Any = None
    max_num_batched_tokens: Any = None
    max_num_partial_prefills: Any = None
    max_long_partial_prefills: Any = None
    long_prefill_token_threshold: Any = None
    max_num_seqs: Any = None
    max_logprobs: Any = None
    logprobs_mode: Any = None
    disable_log_stats: Any = False
    revision: Any = None
    code_revision: Any = None
    rope_scaling: Any = None
    rope_theta: Any = None
    hf_token: Any = None
    hf_overrides: Any = None
    tokenizer_revision: Any = None
    quantization: Any = None
    enforce_eager: Any = False
    disable_custom_all_reduce: Any = None
    limit_mm_per_prompt: Any = None
    interleave_mm_strings: Any = None
    media_io_kwargs: Any = None
    mm_processor_kwargs: Any = None
    disable_mm_preprocessor_cache: Any = None
    mm_processor_cache_gb: Any = None
    mm_processor_cache_type: Any = None
    mm_shm_cache_max_object_size_mb: Any = None
    mm_encoder_tp_mode: Any = None
    io_processor_plugin: Any = None
    skip_mm_profiling: Any = None
    video_pruning_rate: Any = None
    enable_lora: Any = None
    enable_lora_bias: Any = None
    max_loras: Any = None
    max_lora_rank: Any = None
    default_mm_loras: Any = None
    fully_sharded_loras: Any = None
    max_cpu_loras: Any = None
    lora_dtype: Any = None
    lora_extra_vocab_size: Any = None
    ray_workers_use_nsight: Any = None
    num_gpu_blocks_override: Any = None
    num_lookahead_slots: Any = None
    model_loader_extra_config: Any = None
    ignore_patterns: Any = None
    enable_chunked_prefill: Any = None
    disable_chunked_mm_input: Any = None
    disable_hybrid_kv_cache_manager: Any = None
    structured_outputs_config: Any = None
    reasoning_parser: Any = None
    guided_decoding_backend: Any = None
    guided_decoding_disable_fallback: Any = None
    guided_decoding_disable_any_whitespace: Any = None
    guided_decoding_disable_additional_properties: Any = None
    logits_processor_pattern: Any = None
    speculative_config: Any = None
    show_hidden_metrics_for_version: Any = None
    otlp_traces_endpoint: Any = None
    collect_detailed_traces: Any = None
    scheduling_policy: Any = None
    scheduler_cls: Any = None
    pooler_config: Any = None
    override_pooler_config: Any = None
    compilation_config: Any = None
    worker_cls: Any = None
    worker_extension_cls: Any = None
    kv_transfer_config: Any = None
    kv_events_config: Any = None
    generation_config: Any = None
    enable_sleep_mode: Any = None
    override_generation_config: Any = None
    model_impl: Any = None
    override_attention_dtype: Any = None
    calculate_kv_scales: Any = None
    mamba_cache_dtype: Any = None
    mamba_ssm_cache_dtype: Any = None
    additional_config: Any = None
    use_tqdm_on_load: Any = None
    pt_load_map_location: Any = None
    enable_multimodal_encoder_data_parallel: Any = None
    logits_processors: Any = None
    async_scheduling: Any = None
    kv_sharing_fast_prefill: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            raise TypeError(f"model must be a str, got {type(self.model).__name__}")
        if self.dtype not in MODEL_DTYPES:
            raise ValueError(f"dtype {self.dtype!r} not in {MODEL_DTYPES}")
        if self.kv_cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"kv_cache_dtype {self.kv_cache_dtype!r} not in {CACHE_DTYPES}")
        if self.load_format not in LOAD_FORMATS:
            raise ValueError(f"load_format {self.load_format!r} not in {LOAD_FORMATS}")
        if self.quantization is not None and self.quantization not in QUANTIZATION_METHODS:
            raise ValueError(f"Unknown quantization method: {self.quantization}")
        if not 0 < float(self.gpu_memory_utilization) <= 1:
            raise ValueError("GPU memory utilization must be within (0, 1]")
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in _BOOLS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        for name in ("swap_space", "cpu_offload_gb"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.speculative_config is not None and not isinstance(self.speculative_config, dict):
            raise TypeError("speculative_config must be a dict")


@dataclass
class AsyncEngineArgs(EngineArgs):
    """Arguments for asynchronous vLLM engine."""

    enable_log_requests: bool = False
