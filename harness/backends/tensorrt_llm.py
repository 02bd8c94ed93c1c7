"""TensorRT-LLM backend (LLM API of TensorRT-LLM 1.0, the ``tensorrt-llm`` image).

Two flows, chosen by ``tensorrt.runtime``:

- ``tensorrt`` (default): ``tensorrt_llm._tensorrt_engine.LLM`` (``TrtLlmArgs``) builds a TensorRT
  engine from a Hugging Face checkpoint with a ``BuildConfig`` and an optional ``QuantConfig``. With
  ``engine_cache_dir`` the built engine is saved (``LLM.save``) under a key of everything that
  shapes it and reused by later loads.
- ``pytorch``: ``tensorrt_llm.LLM`` (``TorchLlmArgs``), TensorRT-LLM's PyTorch flow: no engine;
  the ``max_*`` limits are runtime arguments of the LLM itself.

Every request, of a static batch or of simulated traffic, goes through
``LLM.generate_async(..., streaming=True)`` on the harness's one event loop
(``harness.backends.aio``); each
streamed chunk is timestamped when it arrives. Not yet run on hardware by lembench: the code follows
the documented API and is unit-tested against a fake of the library (tests/fakes/tensorrt_llm_fake).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from harness.backends.base import (
    GREEDY,
    Backend,
    BackendOOM,
    BackendUnavailable,
    FlopsEstimate,
    Generation,
    LoadInfo,
    ModelLoadError,
    Prompt,
    Sampling,
    error_line,
    library_version,
    ordinary_token_ids,
)
from harness.backends.tensorrt_llm_options import OPTIONS_SCHEMA
from harness.contract.descriptions import BackendDescription

INSTALL_HINT = (
    "run it in the tensorrt-llm image (lembench images build tensorrt-llm; "
    "base nvcr.io/nvidia/tensorrt-llm/release:1.0.0)"
)
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# lembench quantization name -> tensorrt_llm.llmapi.QuantAlgo member (TensorRT flow only).
QUANT_ALGOS = {
    "fp8": "FP8",
    "int8_sq": "W8A8_SQ_PER_CHANNEL",
    "int4_awq": "W4A16_AWQ",
    "int8_wo": "W8A16",
    "int4_wo": "W4A16",
}
# kv_cache_dtype -> QuantConfig.kv_cache_quant_algo (TensorRT) or KvCacheConfig.dtype (PyTorch).
KV_QUANT_ALGOS = {"fp8": "FP8", "int8": "INT8"}
KV_DTYPES_PYTORCH = {"fp8": "fp8"}
LIMITS = ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens")
RUNTIMES = {"tensorrt": "tensorrt_llm._tensorrt_engine", "pytorch": "tensorrt_llm"}
_VERSIONED = ("tensorrt_llm", "tensorrt", "torch", "transformers")


class OptionError(ValueError):
    """A ``tensorrt:`` option that the chosen flow cannot honour (reported as a load error)."""


def _is_oom(exc: BaseException) -> bool:
    """torch's OutOfMemoryError, MemoryError, or the executor's CUDA/TensorRT OOM messages."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or "outofmemory" in text


def engine_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """The LLM API arguments of an experiment config, JSON-safe (recorded as ``engine_args``).

    ``{"runtime", "llm": {plain LLM kwargs}, "build_config", "quant_config", "kv_cache_config"}``;
    the three configs are the keyword arguments of ``BuildConfig``, ``QuantConfig`` (QuantAlgo
    member names) and ``KvCacheConfig``, or None when nothing was asked (engine default). Options
    absent from ``tensorrt:`` are left to the engine. Raises OptionError for an option the chosen
    flow does not have, naming the alternative.
    """
    opts = config.get("tensorrt") or {}
    runtime = opts.get("runtime") or "tensorrt"
    llm: dict[str, Any] = {"dtype": DTYPES[config.get("precision", "fp32")]}
    if opts.get("tp_size") is not None:
        llm["tensor_parallel_size"] = int(opts["tp_size"])
    if opts.get("pp_size") is not None:
        llm["pipeline_parallel_size"] = int(opts["pp_size"])
    limits = {k: int(opts[k]) for k in LIMITS if opts.get(k) is not None}

    kv: dict[str, Any] = {}
    if opts.get("kv_cache_free_gpu_memory_fraction") is not None:
        kv["free_gpu_memory_fraction"] = float(opts["kv_cache_free_gpu_memory_fraction"])
    if opts.get("enable_block_reuse") is not None:
        kv["enable_block_reuse"] = bool(opts["enable_block_reuse"])
    kv_dtype = opts.get("kv_cache_dtype")
    quant = opts.get("quantization")

    build: dict[str, Any] | None = None
    quant_config: dict[str, Any] | None = None
    if runtime == "tensorrt":
        # TrtLlmArgs builds the engine from build_config; its max_* are only runtime clamps.
        build = limits or None
        if quant or kv_dtype not in (None, "auto"):
            quant_config = {}
            if quant:
                quant_config["quant_algo"] = QUANT_ALGOS[quant]
            if kv_dtype not in (None, "auto"):
                quant_config["kv_cache_quant_algo"] = KV_QUANT_ALGOS[kv_dtype]
    else:
        if quant:
            raise OptionError(
                f"tensorrt.quantization={quant!r} needs runtime: tensorrt (the PyTorch flow has no "
                "on-the-fly quantization; give it a pre-quantized ModelOpt checkpoint instead)"
            )
        if opts.get("engine_cache_dir"):
            raise OptionError(
                "tensorrt.engine_cache_dir needs runtime: tensorrt (the PyTorch flow builds no "
                "engine to cache)"
            )
        if kv_dtype not in (None, "auto"):
            if kv_dtype not in KV_DTYPES_PYTORCH:
                raise OptionError(
                    f"tensorrt.kv_cache_dtype={kv_dtype!r}: the PyTorch flow's KV cache takes "
                    "auto or fp8; use runtime: tensorrt for an int8 KV cache"
                )
            kv["dtype"] = KV_DTYPES_PYTORCH[kv_dtype]
        llm.update(limits)  # TorchLlmArgs: max_* are the LLM's own arguments
    if config.get("weights") == "dummy":
        llm["load_format"] = "dummy"  # both flows: random weights from config.json
    return {
        "runtime": runtime,
        "llm": llm,
        "build_config": build,
        "quant_config": quant_config,
        "kv_cache_config": kv or None,
    }


def sampling_kwargs(
    max_new_tokens: int, exact: bool, sampling: Sampling, end_id: int | None = None
) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments for one request.

    Greedy is ``top_k=1`` (documented as greedy sampling). ``exact`` sets ``ignore_eos`` and
    ``min_tokens`` so every request produces ``max_new_tokens``. ``end_id`` is given when there is
    no tokenizer to take it from (dummy weights without ``model.tokenizer``).
    """
    kwargs: dict[str, Any] = {"max_tokens": int(max_new_tokens)}
    if exact:
        kwargs.update(ignore_eos=True, min_tokens=int(max_new_tokens))
    if end_id is not None:
        kwargs["end_id"] = int(end_id)
    if not sampling.do_sample:
        kwargs["top_k"] = 1
        return kwargs
    kwargs.update(
        temperature=float(sampling.temperature),
        top_p=float(sampling.top_p),
        top_k=int(sampling.top_k),  # 0: all logits (the API's "off")
        seed=int(sampling.seed),
    )
    if sampling.min_p > 0:
        kwargs["min_p"] = float(sampling.min_p)
    if sampling.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = float(sampling.repetition_penalty)
    return kwargs


def engine_cache_key(source: dict[str, Any], spec: dict[str, Any], version: str | None) -> str:
    """Folder name of a built engine: a hash of the model source, the weights kind, dtype,
    parallelism, build and quantization options and the TensorRT-LLM version (KV cache options
    are runtime settings and do not change the engine)."""
    keyed = {
        "source": source,
        "llm": spec["llm"],
        "build_config": spec["build_config"],
        "quant_config": spec["quant_config"],
        "tensorrt_llm": version,
    }
    blob = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class TensorRTLLMBackend(Backend):
    """TensorRT-LLM's LLM API, TensorRT engine or PyTorch flow; serves traffic as it arrives."""

    description = BackendDescription(
        name="tensorrt-llm",
        summary="TensorRT-LLM's LLM API (TensorRT engine or PyTorch flow); serves traffic",
        option_block="tensorrt",
        options_schema=OPTIONS_SCHEMA,
        aliases=("tensorrt_llm", "trtllm"),
        traffic=True,
        streaming=True,
        dummy_weights=True,
        quantisations=tuple(QUANT_ALGOS),
        imports=("tensorrt_llm",),
        distributions=_VERSIONED,
        image="tensorrt-llm",
        cpu_image="tensorrt-llm",
        install=INSTALL_HINT,
        engine_distribution="tensorrt_llm",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self.llm: Any = None
        self.tokenizer: Any = None
        self.hf_config: dict[str, Any] = {}
        self._tllm: Any = None
        self._end_id: int | None = None
        self._vocab: list[int] | None = None

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Build or reuse an engine (TensorRT flow) or load the model (PyTorch flow)."""
        try:
            spec = engine_kwargs(self.config)
        except OptionError as exc:
            raise ModelLoadError(str(exc)) from exc
        try:
            import tensorrt_llm
            from tensorrt_llm import llmapi
        except ImportError as exc:
            raise BackendUnavailable(
                f"the tensorrt-llm backend needs TensorRT-LLM 1.0 ({exc.name or exc} is missing): "
                f"{INSTALL_HINT}"
            ) from exc
        self._tllm = llmapi
        version = getattr(tensorrt_llm, "__version__", None) or library_version("tensorrt_llm")
        source, model_arg, tokenizer_arg = self._model_source()
        info: dict[str, Any] = {**source, "runtime": spec["runtime"], "engine_args": spec}

        t0 = time.perf_counter()
        try:
            llm_cls = self._llm_class(spec["runtime"])
            cache = (self.config.get("tensorrt") or {}).get("engine_cache_dir")
            if cache:
                self.llm, info["engine_cache"] = self._cached_engine(
                    llm_cls, spec, Path(cache), engine_cache_key(source, spec, version),
                    model_arg, tokenizer_arg,
                )  # fmt: skip
            else:
                t_build = time.perf_counter()
                self.llm = llm_cls(**self._llm_kwargs(spec, model_arg, tokenizer_arg))
                info["engine_cache"] = {
                    "status": "disabled",
                    "build_time_s": round(time.perf_counter() - t_build, 3),
                }
            self.hf_config = self.hf_config or self._read_hf_config(model_arg)
            self.tokenizer = self._hf_tokenizer(tokenizer_arg)
        except (BackendUnavailable, ModelLoadError, BackendOOM):
            raise
        except ImportError as exc:
            raise BackendUnavailable(f"{error_line(exc)} ({INSTALL_HINT})") from exc
        except Exception as exc:  # build, validation and checkpoint errors alike
            self.unload()
            if _is_oom(exc):
                raise BackendOOM(f"out of memory loading the model: {error_line(exc)}") from exc
            raise ModelLoadError(
                f"cannot load {self.model_ref.get('ref')!r} with TensorRT-LLM "
                f"({spec['runtime']} flow): {error_line(exc)}"
            ) from exc
        load_time = time.perf_counter() - t0

        eos = self.hf_config.get("eos_token_id")
        eos = eos[0] if isinstance(eos, list) and eos else eos
        self._end_id = None if self.tokenizer is not None or eos is None else int(eos)
        info["load_time_s"] = round(load_time, 3)
        versions = {name: library_version(name) for name in _VERSIONED}
        versions["tensorrt_llm"] = version
        return LoadInfo(
            device="cuda",  # TensorRT-LLM runs on CUDA GPUs only
            dtype=spec["llm"]["dtype"],
            load_time_s=load_time,
            model=info,
            versions=versions,
        )

    def _llm_class(self, runtime: str) -> Any:
        import importlib

        return importlib.import_module(RUNTIMES[runtime]).LLM

    def _model_source(self) -> tuple[dict[str, Any], str, str | None]:
        """(provenance, LLM ``model`` argument, tokenizer source) for the model reference.

        Dummy weights: a folder holding the bundled config.json of the architecture
        (``harness.models.dummy_weights.config_dir``); both flows' ``load_format='dummy'`` fill it
        with random weights."""
        ref = self.model_ref
        kind, name = ref.get("kind"), str(ref.get("ref"))
        tokenizer = ref.get("tokenizer")
        source = {
            "kind": kind,
            "ref": name,
            "revision": ref.get("revision"),
            "tokenizer": tokenizer,
            "weights": self.config.get("weights", "real"),
        }
        if self.config.get("weights") == "dummy":
            from harness.models.dummy_weights import bundled_config, config_dir

            try:
                self.hf_config = bundled_config(name)
                folder = config_dir(name)
            except KeyError as exc:
                raise ModelLoadError(
                    f"weights: dummy needs a bundled config for {name!r}: {exc}"
                ) from exc
            return source, str(folder), tokenizer
        if kind not in ("hf", "path"):
            raise ModelLoadError(
                f"TensorRT-LLM loads Hugging Face checkpoints (a Hub id or a model folder), not "
                f"{kind!r} {name!r}; use the llamacpp or pytorch backend for GGUF files"
            )
        return source, name, tokenizer or name

    def _llm_kwargs(
        self, spec: dict[str, Any], model: str, tokenizer: str | None, engine: bool = False
    ) -> dict[str, Any]:
        """Instantiate the spec's configs with the library's classes. ``engine``: loading a saved
        engine, whose build and quantization are already fixed (TrtLlmArgs ignores them there)."""
        api = self._tllm
        kwargs: dict[str, Any] = {"model": model, **spec["llm"]}
        if tokenizer:
            kwargs["tokenizer"] = tokenizer
        else:
            kwargs["skip_tokenizer_init"] = True  # token ids in and out; no tokenizer shipped
        if self.model_ref.get("revision") and self.config.get("weights") != "dummy" and not engine:
            kwargs["revision"] = self.model_ref["revision"]
        if spec["kv_cache_config"]:
            kwargs["kv_cache_config"] = api.KvCacheConfig(**spec["kv_cache_config"])
        if engine:
            kwargs.pop("load_format", None)
            return kwargs
        if spec["build_config"]:
            kwargs["build_config"] = api.BuildConfig(**spec["build_config"])
        if spec["quant_config"]:
            q = spec["quant_config"]
            kwargs["quant_config"] = api.QuantConfig(
                **{k: getattr(api.QuantAlgo, v) for k, v in q.items()}
            )
        return kwargs

    def _cached_engine(
        self,
        llm_cls: Any,
        spec: dict[str, Any],
        cache_dir: Path,
        key: str,
        model: str,
        tokenizer: str | None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reuse ``cache_dir/key`` when a saved engine is there; else build, ``save`` and keep."""
        target = cache_dir / key
        record: dict[str, Any] = {"dir": str(cache_dir), "key": key}
        if (target / "config.json").is_file():
            llm = llm_cls(**self._llm_kwargs(spec, str(target), tokenizer, engine=True))
            return llm, {**record, "status": "reused", "build_time_s": None}
        t_build = time.perf_counter()
        llm = llm_cls(**self._llm_kwargs(spec, model, tokenizer))
        build_time = time.perf_counter() - t_build
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f".{key}.partial-{os.getpid()}"
        t_save = time.perf_counter()
        llm.save(str(partial))
        try:
            os.replace(partial, target)  # atomic: a half-written engine is never reused
        except OSError:  # another process saved the same engine first: keep theirs
            shutil.rmtree(partial, ignore_errors=True)
        record.update(
            status="built",
            build_time_s=round(build_time, 3),
            save_time_s=round(time.perf_counter() - t_save, 3),
        )
        return llm, record

    def _read_hf_config(self, model: str) -> dict[str, Any]:
        """The checkpoint's config.json as a dict (vocabulary size, EOS id, FLOPs)."""
        from transformers import AutoConfig

        revision = self.model_ref.get("revision")
        return AutoConfig.from_pretrained(model, revision=revision).to_dict()

    def _hf_tokenizer(self, source: str | None) -> Any:
        if not source:
            return None
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source)

    def unload(self) -> None:
        """Shut the LLM's executor down (frees the engine and its KV cache)."""
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.shutdown()

    # -- tokens ----------------------------------------------------------------------------

    def _require(self) -> None:
        if self.llm is None:
            raise RuntimeError("TensorRTLLMBackend: call load() first")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (needs a tokenizer)."""
        self._require()
        if self.tokenizer is None:
            raise ModelLoadError("text workloads with weights: dummy need model.tokenizer")
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def vocab_token_ids(self) -> list[int]:
        """Ordinary token ids: the tokenizer's vocabulary minus special and added tokens, or
        (no tokenizer) every id below the config's vocab_size minus its bos/eos/pad ids."""
        self._require()
        if self._vocab is None:
            size = int(self.hf_config.get("vocab_size") or 0)
            tok = self.tokenizer
            if tok is None:
                from harness.models.dummy_weights import dummy_vocab_token_ids

                self._vocab = dummy_vocab_token_ids(self.hf_config)
                return self._vocab
            self._vocab = ordinary_token_ids(tok, size or None)
        return self._vocab

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        prompts: list[Prompt],
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> list[Generation]:
        """One static batch: every prompt submitted at once (the engine batches them in flight);
        ``t_start`` is the batch's submission time, shared by all its requests."""
        self._require()
        if not prompts:
            return []
        if any(not p.token_ids for p in prompts):
            raise ValueError("every prompt needs at least one token")
        from harness.backends import aio

        async def batch() -> list[Generation]:
            t_start = time.perf_counter()
            jobs = [self._stream(p, max_new_tokens, exact, sampling, t_start) for p in prompts]
            return list(await asyncio.gather(*jobs))

        return aio.run(batch())

    async def agenerate(
        self,
        prompt: Prompt,
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> Generation:
        """Submit one request now (traffic simulation) and stream it to completion."""
        self._require()
        return await self._stream(prompt, max_new_tokens, exact, sampling, None)

    async def _stream(
        self,
        prompt: Prompt,
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling,
        t_start: float | None,
    ) -> Generation:
        """Stream one request; each chunk's new tokens get the chunk's arrival time."""
        params = self._tllm.SamplingParams(
            **sampling_kwargs(max_new_tokens, exact, sampling, self._end_id)
        )
        if self.tokenizer is None:
            params.detokenize = False  # nothing to detokenize with (skip_tokenizer_init)
        start = time.perf_counter() if t_start is None else t_start
        times: list[float] = []
        ids: list[int] = []
        text: str | None = None
        try:
            result = self.llm.generate_async(
                list(prompt.token_ids), sampling_params=params, streaming=True
            )
            async for output in result:
                now = time.perf_counter()
                completion = output.outputs[0]
                ids = list(completion.token_ids)  # cumulative in streaming mode
                times.extend([now] * (len(ids) - len(times)))
                text = completion.text if self.tokenizer is not None else None
        except Exception as exc:
            if _is_oom(exc):
                raise BackendOOM(
                    f"out of memory generating {max_new_tokens} tokens for a "
                    f"{len(prompt.token_ids)}-token prompt: {error_line(exc)}"
                ) from exc
            raise
        if exact and len(ids) != max_new_tokens:
            raise RuntimeError(
                f"TensorRT-LLM produced {len(ids)} tokens where exactly {max_new_tokens} were asked"
            )
        return Generation(
            tokens_in=len(prompt.token_ids),
            tokens_out=len(ids),
            t_start=start,
            token_times=times[: len(ids)],
            text=text,
        )

    # -- FLOPs -----------------------------------------------------------------------------

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """FLOPs per token from the checkpoint's architecture (``flops.estimate_from_config``): the
        engine's own weights are not torch modules, and the architecture's cost does not depend
        on the kernels."""
        from harness.window.flops import estimate_from_config

        if not self.hf_config:
            return FlopsEstimate(None, "unavailable", None, sequence_length, "no HF config")
        return estimate_from_config(self.hf_config, sequence_length)
