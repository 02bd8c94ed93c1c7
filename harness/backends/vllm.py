"""vLLM backend (pinned: vLLM 0.11.0, V1 engine; the ``vllm`` image).

Two engines, never both alive on the GPU: static batches run on the offline engine (``vllm.LLM``),
driven step by step so every step's new tokens get a host timestamp; traffic (``agenerate``) runs on
``AsyncLLM`` with streamed DELTA outputs on harness.backends.aio's loop. ``load()`` starts the kind
the first experiment needs; a call that needs the other kind shuts the live one down first (outside
the measured window: warmup makes that call). vllm is imported inside methods only, so importing
this module is cheap and works without vLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
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
from harness.backends.vllm_options import OPTIONS_SCHEMA
from harness.contract.descriptions import BackendDescription

INSTALL_HINT = "use the vllm image: lembench images build vllm"
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# Suite option (schema $defs/vllm_options) -> vllm.EngineArgs field (vLLM 0.11.0 arg_utils.py).
# Same names on purpose: the suite speaks vLLM's own vocabulary, so its docs apply unchanged.
OPTION_ARGS: dict[str, str] = {
    name: name
    for name in (
        "gpu_memory_utilization", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
        "enable_prefix_caching", "enable_chunked_prefill", "enforce_eager", "kv_cache_dtype",
        "quantization", "tensor_parallel_size", "pipeline_parallel_size", "swap_space",
        "cpu_offload_gb", "speculative_config",
    )
}  # fmt: skip
# Messages (anywhere in an exception chain) that mean the GPU ran out of memory.
_OOM_MARKERS = ("no available memory for the cache blocks", "out of memory", "outofmemoryerror")
_VERSIONED = ("vllm", "torch", "transformers", "tokenizers")


def is_oom(exc: BaseException) -> bool:
    """True when ``exc`` or anything in its cause/context chain reports an out-of-memory."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = f"{type(current).__name__}: {current}".lower()
        if any(marker in text for marker in _OOM_MARKERS):
            return True
        current = current.__cause__ or current.__context__
    return False


# -- pure mappings (unit-tested option by option) ---------------------------------------------


def model_source(model_ref: dict[str, Any]) -> dict[str, Any]:
    """``model``/``tokenizer``/``revision`` arguments for vLLM from a resolved model reference.

    vLLM 0.11 takes Hub ids and local folders as ``model``; GGUF only as a local file path (it
    then reads config and, unless ``tokenizer`` is given, the tokenizer from the GGUF file)."""
    from harness.models.refs import local_file

    kind, ref = model_ref["kind"], model_ref["ref"]
    path = local_file(model_ref)
    if path is None and kind == "path" and model_ref.get("gguf_file"):
        path = Path(ref) / model_ref["gguf_file"]
    if kind == "hf" and model_ref.get("gguf_file"):
        raise ModelLoadError(
            f"vLLM loads GGUF from a local file only: download {model_ref['gguf_file']} of {ref} "
            "and name it with model: {path: ...} (and tokenizer: the base model's Hub id)"
        )
    out: dict[str, Any] = {"model": str(path) if path is not None else ref}
    if model_ref.get("tokenizer"):
        out["tokenizer"] = model_ref["tokenizer"]
    if kind == "hf" and model_ref.get("revision"):
        out["revision"] = model_ref["revision"]
    return out


def engine_kwargs(config: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` / ``AsyncEngineArgs`` from an experiment's config.

    ``source`` is ``model_source(...)`` (or the dummy-weights folder, see ``dummy_source``).
    Options absent from ``config["vllm"]`` are not passed: vLLM's own default applies."""
    kwargs = dict(source)
    kwargs["dtype"] = DTYPES[config.get("precision", "fp32")]
    for option, value in (config.get("vllm") or {}).items():
        if option not in OPTION_ARGS:  # the schema forbids this; guard against a stale schema
            raise ValueError(f"unknown vllm option {option!r}")
        kwargs[OPTION_ARGS[option]] = dict(value) if isinstance(value, dict) else value
    # lembench measures on its own; vLLM's periodic stats logging would only add host work
    # (LLM already defaults to this, AsyncEngineArgs does not).
    kwargs["disable_log_stats"] = True
    return kwargs


def dummy_source(model_ref: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Source arguments for random weights and their provenance: ``load_format="dummy"`` (vLLM's
    DummyModelLoader reads only config.json) on the bundled architecture's folder of a Hub id
    (``harness.models.dummy_weights.config_dir``) or a local model folder. The tokenizer comes from
    ``model.tokenizer``, else from a local folder that has one; without one
    ``skip_tokenizer_init=True`` (prompts are token ids, outputs are not detokenized)."""
    from harness.models.dummy_weights import config_dir, config_sha256, model_config

    try:
        hf_config, note = model_config(model_ref)
        folder = (
            config_dir(model_ref["ref"]) if model_ref["kind"] == "hf" else Path(model_ref["ref"])
        )
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(f"weights: dummy: {exc}") from exc
    tokenizer = model_ref.get("tokenizer")
    files = ("tokenizer.json", "tokenizer_config.json")
    if not tokenizer and model_ref["kind"] == "path" and any((folder / f).is_file() for f in files):
        tokenizer = str(folder)
    out: dict[str, Any] = {"model": str(folder), "load_format": "dummy"}
    if tokenizer:
        out["tokenizer"] = tokenizer
    else:
        out["skip_tokenizer_init"] = True
    return out, {"dummy_config_source": note, "dummy_config_sha256": config_sha256(hf_config)}


def sampling_kwargs(
    sampling: Sampling, max_new_tokens: int, exact: bool, detokenize: bool
) -> dict[str, Any]:
    """``vllm.SamplingParams`` arguments (output_kind is added by the caller).

    Greedy is ``temperature=0`` (vLLM then ignores top_p/top_k/min_p). ``exact``: ``ignore_eos``
    plus ``min_tokens = max_tokens`` so no stop token can end a request early."""
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": max_new_tokens,
        "min_tokens": max_new_tokens if exact else 0,
        "ignore_eos": exact,
        "detokenize": detokenize,
    }
    if not sampling.do_sample:
        kwargs["temperature"] = 0.0
        return kwargs
    kwargs.update(
        temperature=float(sampling.temperature),
        top_p=float(sampling.top_p),
        top_k=int(sampling.top_k),  # 0 disables top-k in vLLM as in lembench
        min_p=float(sampling.min_p),
        repetition_penalty=float(sampling.repetition_penalty),
        seed=int(sampling.seed),
    )
    return kwargs


def visible_devices(device: str, current: str | None) -> str | None:
    """CUDA_VISIBLE_DEVICES for ``device`` (vLLM picks GPUs only through it), or None to keep.

    ``cuda:N`` selects the N-th device of what is visible now (a runtime may already narrow it)."""
    if not device.startswith("cuda:"):
        return None
    index = int(device.partition(":")[2])
    visible = [d.strip() for d in current.split(",")] if current else None
    if visible is None:
        return str(index)
    if index >= len(visible):
        raise BackendUnavailable(f"device {device!r}: only {len(visible)} visible CUDA device(s)")
    return visible[index]


# -- the backend --------------------------------------------------------------------------------


class VllmBackend(Backend):
    """vLLM 0.11 (V1 engine) on NVIDIA GPUs: offline engine for batches, AsyncLLM for traffic."""

    description = BackendDescription(
        name="vllm",
        summary="vLLM 0.11 (V1 engine): offline engine for batches, AsyncLLM for traffic",
        options_schema=OPTIONS_SCHEMA,
        traffic=True,
        streaming=True,
        dummy_weights=True,
        quantisations=tuple(q for q in OPTIONS_SCHEMA["properties"]["quantization"]["enum"] if q),
        imports=("vllm",),
        distributions=_VERSIONED,
        image="vllm",
        cpu_image="vllm",
        install=INSTALL_HINT,
        engine_distribution="vllm",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self._vllm: Any = None
        self._llm: Any = None  # vllm.LLM (offline engine)
        self._async: Any = None  # vllm.v1.engine.async_llm.AsyncLLM
        self._kwargs: dict[str, Any] = {}
        self._tokenizer: Any = None
        self._hf_config: Any = None
        self._dummy_info: dict[str, Any] = {}
        self._vocab: list[int] | None = None
        self._ids = itertools.count()
        self.engine_switches: list[dict[str, Any]] = []  # later engine starts (kind, seconds)

    # -- engines -------------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Start the engine kind the first experiment needs (AsyncLLM with ``traffic:``)."""
        try:
            import vllm
        except ImportError as exc:
            raise BackendUnavailable(
                f"the vllm backend needs vLLM ({exc.name} is missing): {INSTALL_HINT}"
            ) from exc
        self._vllm = vllm
        device = str(self.config.get("device", "auto"))
        if device == "cpu":
            raise BackendUnavailable("the vllm image is vLLM's CUDA build: use device auto/cuda")
        cuda = visible_devices(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if cuda is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda  # inherited by the engine-core process
        self._kwargs = engine_kwargs(self.config, self._source())
        kind = "async" if self.config.get("traffic") else "offline"
        t0 = time.perf_counter()
        self._start(kind)
        load_time = time.perf_counter() - t0
        model_config = self._engine_model_config()
        self._hf_config = model_config.hf_config
        ref = self.model_ref
        info: dict[str, Any] = {
            "kind": ref["kind"],
            "ref": ref["ref"],
            "gguf_file": ref.get("gguf_file"),
            "revision": ref.get("revision"),
            "tokenizer": ref.get("tokenizer"),
            "weights": self.config.get("weights", "real"),
            "engine": kind,
            "engine_args": json.loads(json.dumps(self._kwargs, default=str)),
            "architectures": list(getattr(self._hf_config, "architectures", None) or []),
            "max_model_len": getattr(model_config, "max_model_len", None),
            "load_time_s": round(load_time, 3),
            **self._dummy_info,
        }
        return LoadInfo(
            device=device if device.startswith("cuda") else "cuda",
            dtype=str(model_config.dtype).removeprefix("torch."),
            load_time_s=load_time,
            model=info,
            versions={name: library_version(name) for name in _VERSIONED},
        )

    def _source(self) -> dict[str, Any]:
        if self.config.get("weights", "real") != "dummy":
            return model_source(self.model_ref)
        source, self._dummy_info = dummy_source(self.model_ref)
        return source

    def _start(self, kind: str) -> None:
        """Create the ``kind`` engine, mapping failures to the backend's error classes."""
        try:
            if kind == "offline":
                self._llm = self._vllm.LLM(**self._kwargs)
                engine = self._llm.llm_engine
            else:
                # AsyncLLM is built inside the loop that will drive it (as vLLM's API server
                # does), so its output-queue task starts now and sees engine-core failures.
                self._async = self._on_loop(self._build_async)
                engine = self._async
        except (BackendUnavailable, ModelLoadError, BackendOOM):
            raise
        except ImportError as exc:
            raise BackendUnavailable(f"{error_line(exc)} ({INSTALL_HINT})") from exc
        except Exception as exc:
            if is_oom(exc):
                raise BackendOOM(f"out of memory starting vLLM: {error_line(exc)}") from exc
            raise ModelLoadError(
                f"vLLM cannot load {self.model_ref.get('ref')!r}: {error_line(exc)} "
                "(with the default multiprocess engine the root cause is in the log above)"
            ) from exc
        if self._tokenizer is None:
            self._tokenizer = engine.tokenizer  # None with skip_tokenizer_init

    def _build_async(self) -> Any:
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(AsyncEngineArgs(**self._kwargs))

    @staticmethod
    def _on_loop(fn: Any) -> Any:
        """Call ``fn()`` on harness.backends.aio's loop: directly when already there (agenerate),
        else through ``aio.run`` (load, generate). Another loop running in this thread (a host
        application's, e.g. Playwright's sync API in one test process) is not
        harness.backends.aio's."""
        from harness.backends import aio

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is aio.loop():
            return fn()

        async def call() -> Any:
            return fn()

        return aio.run(call())

    def _engine_model_config(self) -> Any:
        return (
            self._llm.llm_engine.model_config if self._llm is not None else self._async.model_config
        )

    def _switch(self, kind: str) -> None:
        """Make ``kind`` the live engine: shut the other down first (one model on the GPU)."""
        live = "offline" if self._llm is not None else "async" if self._async is not None else None
        if live == kind:
            return
        if live is None:
            raise RuntimeError("VllmBackend: call load() first")
        t0 = time.perf_counter()
        self._stop_engines()
        self._start(kind)
        self.engine_switches.append({"to": kind, "seconds": round(time.perf_counter() - t0, 3)})

    def _stop_engines(self) -> None:
        if self._llm is not None:
            self._llm.llm_engine.engine_core.shutdown()  # ends the engine-core process
            self._llm = None
        if self._async is not None:
            self._on_loop(self._async.shutdown)  # cancels tasks of the loop it runs on
            self._async = None
        gc.collect()
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()  # vLLM's documented release between engines
        except ImportError:
            pass

    def unload(self) -> None:
        """Shut down whichever engine is alive."""
        if self._llm is not None or self._async is not None:
            self._stop_engines()

    # -- tokens --------------------------------------------------------------------------------

    def _require(self) -> None:
        if self._hf_config is None:
            raise RuntimeError("VllmBackend: call load() first")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (needs a tokenizer)."""
        self._require()
        if self._tokenizer is None:
            raise ValueError(
                "this vllm model runs without a tokenizer (weights: dummy): text workloads need "
                "model.tokenizer (e.g. the real model's Hub id); synthetic workloads do not"
            )
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def vocab_token_ids(self) -> list[int]:
        """Ordinary token ids: the tokenizer's vocabulary minus special/added tokens, or without a
        tokenizer every id below the config's vocab_size minus bos/eos/pad."""
        self._require()
        if self._vocab is None:
            if self._tokenizer is None:
                from harness.models.dummy_weights import dummy_vocab_token_ids

                self._vocab = dummy_vocab_token_ids(self._hf_config.to_dict())
            else:
                self._vocab = ordinary_token_ids(self._tokenizer, int(self._hf_config.vocab_size))
        return self._vocab

    def _params(self, sampling: Sampling, max_new_tokens: int, exact: bool) -> Any:
        from vllm.sampling_params import RequestOutputKind

        kwargs = sampling_kwargs(sampling, max_new_tokens, exact, self._tokenizer is not None)
        return self._vllm.SamplingParams(**kwargs, output_kind=RequestOutputKind.DELTA)

    # -- generation ----------------------------------------------------------------------------

    def generate(
        self, prompts: list[Prompt], max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> list[Generation]:
        """One static batch on the offline engine, stepped by hand.

        V1's ``LLM.generate`` returns finished outputs without per-token times (RequestOutput
        .metrics is None in V1), so this adds the requests and calls ``step()`` until none is
        unfinished; the DELTA tokens of each step are stamped when the step returns to the host.
        ``t_start`` is read before the first request is added."""
        self._require()
        if not prompts:
            return []
        if any(not p.token_ids for p in prompts):
            raise ValueError("every prompt needs at least one token")
        self._switch("offline")
        from vllm.inputs import TokensPrompt

        engine = self._llm.llm_engine
        params = self._params(sampling, max_new_tokens, exact)
        ids = [f"lembench-{next(self._ids)}" for _ in prompts]
        tokens: dict[str, list[int]] = {rid: [] for rid in ids}
        times: dict[str, list[float]] = {rid: [] for rid in ids}
        texts: dict[str, list[str]] = {rid: [] for rid in ids}
        n_in: dict[str, int] = {}
        try:
            t_start = time.perf_counter()
            for rid, prompt in zip(ids, prompts, strict=True):
                engine.add_request(
                    rid, TokensPrompt(prompt_token_ids=list(prompt.token_ids)), params
                )
            while engine.has_unfinished_requests():
                outputs = engine.step()
                now = time.perf_counter()
                for out in outputs:
                    completion = out.outputs[0]
                    new = list(completion.token_ids)
                    tokens[out.request_id].extend(new)
                    times[out.request_id].extend([now] * len(new))  # one step, one arrival
                    texts[out.request_id].append(completion.text or "")
                    if out.prompt_token_ids is not None:
                        n_in[out.request_id] = len(out.prompt_token_ids)
        except Exception as exc:
            self._abort(ids)
            if is_oom(exc):
                raise BackendOOM(
                    f"out of memory generating {len(prompts)}x{max_new_tokens} tokens: "
                    f"{error_line(exc)}"
                ) from exc
            raise
        return [
            Generation(
                tokens_in=n_in.get(rid, len(prompt.token_ids)),
                tokens_out=len(tokens[rid]),
                t_start=t_start,
                token_times=times[rid],
                text="".join(texts[rid]) if self._tokenizer is not None else None,
            )
            for rid, prompt in zip(ids, prompts, strict=True)
        ]

    def _abort(self, ids: list[str]) -> None:
        # A dead engine cannot abort; the original error is what matters.
        with contextlib.suppress(Exception):
            self._llm.llm_engine.abort_request(ids)

    async def agenerate(
        self, prompt: Prompt, max_new_tokens: int, exact: bool, sampling: Sampling = GREEDY
    ) -> Generation:
        """Submit one request to AsyncLLM and stream it; each DELTA chunk's tokens are stamped on
        arrival (a chunk may carry several tokens when the consumer lags: vLLM merges deltas)."""
        self._require()
        if not prompt.token_ids:
            raise ValueError("every prompt needs at least one token")
        if self._async is None:
            # Switching blocks the loop (engine start); only warmup's first request pays it.
            self._switch("async")
        from vllm.inputs import TokensPrompt

        params = self._params(sampling, max_new_tokens, exact)
        rid = f"lembench-{next(self._ids)}"
        tokens: list[int] = []
        times: list[float] = []
        texts: list[str] = []
        n_in = len(prompt.token_ids)
        t_start = time.perf_counter()
        try:
            stream = self._async.generate(
                TokensPrompt(prompt_token_ids=list(prompt.token_ids)), params, rid
            )
            async for out in stream:
                now = time.perf_counter()
                completion = out.outputs[0]
                new = list(completion.token_ids)
                tokens.extend(new)
                times.extend([now] * len(new))
                texts.append(completion.text or "")
                if out.prompt_token_ids is not None:
                    n_in = len(out.prompt_token_ids)
        except Exception as exc:
            if is_oom(exc):
                raise BackendOOM(f"out of memory serving a request: {error_line(exc)}") from exc
            raise
        return Generation(
            tokens_in=n_in,
            tokens_out=len(tokens),
            t_start=t_start,
            token_times=times,
            text="".join(texts) if self._tokenizer is not None else None,
        )

    # -- FLOPs ---------------------------------------------------------------------------------

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """Forward FLOPs per token from the served model's HF config (see ``config_flops``)."""
        self._require()
        from harness.window.flops import estimate_from_config

        return estimate_from_config(self._hf_config, sequence_length)
