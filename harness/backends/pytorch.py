"""PyTorch / Hugging Face transformers backend.

Loads Hub ids, local model folders and GGUF files (dequantised by transformers; the converted model
is cached on disk, see ``harness.models.gguf_cache``), or builds a bundled architecture with seeded
random
weights (``weights: dummy``, ``harness.models.dummy_weights``), and generates static batches with
real
per-step timestamps (``harness.window.timing``). The engine options of the ``pytorch:`` block are
mapped to transformers' API by pure functions in ``harness.backends.pytorch_options``. torch and
transformers are imported inside functions only, so importing this module is cheap and works
without them.
"""

from __future__ import annotations

import gc
import importlib.util
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
from harness.backends.pytorch_options import (
    OPTIONS_SCHEMA,
    EngineArgs,
    engine_kwargs,
    generation_kwargs,
)
from harness.contract.descriptions import BackendDescription
from harness.hardware.threads import resolve_threads

INSTALL_HINT = "pip install lembench[pytorch]"
# Keys of a model's generation config that stay in force; everything else is reset (see load()).
_KEPT_GENERATION_KEYS = {"eos_token_id", "bos_token_id", "pad_token_id", "transformers_version"}
_GENERATION_DEFAULTS = {"use_cache": True, "_from_model_config": True}
_VERSIONED = ("torch", "transformers", "accelerate", "gguf", "calflops", "tokenizers",
              "safetensors", "bitsandbytes")  # fmt: skip


def bitsandbytes_available(find_spec: Any = importlib.util.find_spec) -> bool:
    """Whether bitsandbytes can be imported (checked without importing it)."""
    return find_spec("bitsandbytes") is not None


# -- the backend ---------------------------------------------------------------------------------


class PyTorchBackend(Backend):
    """transformers ``AutoModelForCausalLM`` on CPU or CUDA, fp32/fp16/bf16, real or dummy."""

    description = BackendDescription(
        name="pytorch",
        summary="transformers AutoModelForCausalLM on CPU or CUDA, fp32/fp16/bf16, real or dummy",
        options_schema=OPTIONS_SCHEMA,
        streaming=True,
        dummy_weights=True,
        quantisations=tuple(q for q in OPTIONS_SCHEMA["properties"]["quantization"]["enum"] if q),
        imports=("torch", "transformers", "gguf"),
        distributions=_VERSIONED,
        image="pytorch",
        cpu_image="cpu",
        tested_on_hardware=True,
        install="./setup.sh (installs the CPU engine)",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self.model: Any = None
        self.tokenizer: Any = None
        self.device: Any = None
        self.engine: EngineArgs | None = None
        self.dummy = config.get("weights") == "dummy"
        self._torch: Any = None
        self._pad_id: int = 0
        self._eos_ids: frozenset[int] = frozenset()
        self._vocab: list[int] | None = None
        self._model_config: dict[str, Any] = {}  # the dummy model's config.json (dict)

    @property
    def warmup_per_shape(self) -> bool:
        """Eager CPU execution has nothing shape-specific to warm (no kernel autotuning, no
        compiled graphs): one warmup serves the load group. GPUs and torch.compile warm each
        shape."""
        compiled = self.engine is not None and self.engine.compile_mode is not None
        return self.device is None or self.device.type != "cpu" or compiled

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Load (or, with dummy weights, build) the model onto the configured device and dtype."""
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendUnavailable(
                f"the pytorch backend needs torch and transformers ({exc.name} is missing): "
                f"{INSTALL_HINT}"
            ) from exc
        from transformers.utils import logging as hf_logging

        self._torch = torch
        hf_logging.disable_progress_bar()  # per-tensor GGUF conversion bars would flood the log
        opts = self.config.get("pytorch") or {}
        # Always set: torch's default (every core it sees) is what makes shared-host runs
        # unstable; the count is explicit and recorded (harness.hardware.threads).
        self.threads = resolve_threads(self.config, opts.get("threads"))
        torch.set_num_threads(self.threads.count)
        self.device = self._pick_device(torch, str(self.config.get("device", "auto")))
        engine = engine_kwargs(self.config, self.device.type, self.model_ref["kind"])
        if "quantization_config" in engine.load and not bitsandbytes_available():
            raise BackendUnavailable(
                f"{opts['quantization']} needs CUDA and bitsandbytes: pip install bitsandbytes"
            )
        if self.device.type == "cuda":
            engine.load.setdefault("device_map", str(self.device))  # load straight onto the GPU
        self.engine = engine
        kwargs = dict(engine.load)

        t0 = time.perf_counter()
        try:
            if self.dummy:
                model, tokenizer, info = self._build_dummy(transformers, kwargs)
            else:
                model, tokenizer, info = self._load_weights(transformers, kwargs)
            # Sharded and bitsandbytes models are placed by from_pretrained and
            # refuse .to(); everything else is moved (a CPU load or a GGUF conversion).
            placed = "quantization_config" in kwargs or "device_map" in opts
            if not placed:
                model.to(self.device)
            model.eval()
            if engine.compile_mode is not None:
                # Lazy: compiling happens in the first forward passes, i.e. in the warmup runs,
                # before any measured window (the harness always warms up before measuring).
                model.forward = torch.compile(model.forward, mode=engine.compile_mode)
        except (BackendUnavailable, ModelLoadError, BackendOOM):
            raise
        except (MemoryError, torch.OutOfMemoryError) as exc:
            raise BackendOOM(f"out of memory loading the model: {error_line(exc)}") from exc
        except ImportError as exc:
            raise BackendUnavailable(f"{error_line(exc)} ({INSTALL_HINT})") from exc
        except Exception as exc:  # missing files, hub failures, unsupported formats: all one class
            raise ModelLoadError(
                f"cannot load model {self.model_ref.get('ref')!r}: {error_line(exc)}"
            ) from exc
        load_time = time.perf_counter() - t0

        self.model, self.tokenizer = model, tokenizer
        shipped = model.generation_config
        eos = shipped.eos_token_id
        if eos is None and tokenizer is not None:
            eos = tokenizer.eos_token_id
        self._eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
        pad = tokenizer.pad_token_id if tokenizer is not None else None
        if pad is None:
            pad = getattr(model.config, "pad_token_id", None)
        self._pad_id = int(pad if pad is not None else min(self._eos_ids, default=0))
        if tokenizer is not None:
            if tokenizer.pad_token_id is None:
                # Batches are left-padded; a model without a pad token pads with EOS (masked).
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "left"
        # generate() fills every field we leave unset from the model's generation config, so a
        # shipped repetition_penalty or temperature would change "greedy" (and warn). Keep ids only.
        ignored = {
            k: v
            for k, v in shipped.to_diff_dict().items()
            if k not in _KEPT_GENERATION_KEYS and v != _GENERATION_DEFAULTS.get(k, False)
        }
        model.generation_config = transformers.GenerationConfig(
            eos_token_id=sorted(self._eos_ids) or None,
            bos_token_id=shipped.bos_token_id,
            pad_token_id=self._pad_id,
        )
        info["generation_config_ignored"] = sorted(ignored)
        info.update(
            weights="dummy" if self.dummy else "real",
            load_time_s=round(load_time, 3),
            params=int(sum(p.numel() for p in model.parameters())),
            attn_implementation=getattr(model.config, "_attn_implementation", None),
            threads=torch.get_num_threads(),
            engine_args=engine.record,
        )
        return LoadInfo(
            device=str(self.device),
            dtype=str(model.dtype).removeprefix("torch."),
            load_time_s=load_time,
            model=info,
            versions={name: library_version(name) for name in _VERSIONED},
        )

    @staticmethod
    def _pick_device(torch: Any, wanted: str) -> Any:
        if wanted == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(wanted)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailable(f"device {wanted!r}: torch sees no CUDA GPU here")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise BackendUnavailable(
                    f"device {wanted!r}: only {torch.cuda.device_count()} CUDA device(s)"
                )
        return device

    def _gguf_path(self) -> Path | None:
        """The local GGUF file to convert (alias, gguf, or a folder plus gguf_file), or None."""
        from harness.models.refs import local_file

        ref = self.model_ref
        path = local_file(ref)
        if path is None and ref["kind"] == "path" and ref.get("gguf_file"):
            path = Path(ref["ref"]) / ref["gguf_file"]
        if path is not None and not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        return path

    def _provenance(self) -> dict[str, Any]:
        ref = self.model_ref
        keys = ("kind", "ref", "gguf_file", "revision", "tokenizer")
        return {k: ref.get(k) for k in keys}

    def _load_weights(
        self, transformers: Any, kwargs: dict[str, Any]
    ) -> tuple[Any, Any, dict[str, Any]]:
        auto_model, auto_tok = transformers.AutoModelForCausalLM, transformers.AutoTokenizer
        ref = self.model_ref
        tok_source = ref.get("tokenizer")
        info = self._provenance()
        gguf = self._gguf_path()
        if gguf is not None:
            from harness.models.gguf_cache import converted_source

            source, extra, cache = converted_source(gguf, transformers)
            info.update(cache)
        else:
            source = ref["ref"]
            extra = {k: ref[k] for k in ("revision", "gguf_file") if ref.get(k)}
        model = auto_model.from_pretrained(source, **extra, **kwargs)
        if tok_source:
            tokenizer = auto_tok.from_pretrained(tok_source)
        else:
            tokenizer = auto_tok.from_pretrained(source, **extra)
        return model, tokenizer, info

    def _build_dummy(
        self, transformers: Any, kwargs: dict[str, Any]
    ) -> tuple[Any, Any, dict[str, Any]]:
        """The architecture with seeded random weights (harness.models.dummy_weights), plus the
        tokenizer the model reference names, if any."""
        from harness.models import dummy_weights

        try:
            raw, source = dummy_weights.model_config(self.model_ref)
        except (KeyError, ValueError) as exc:
            raise ModelLoadError(str(exc.args[0])) from None
        self._model_config = raw
        model, route = dummy_weights.build_random_model(raw, self.device, kwargs)
        tok_source = self.model_ref.get("tokenizer")
        tokenizer = transformers.AutoTokenizer.from_pretrained(tok_source) if tok_source else None
        info = self._provenance()
        info["dummy"] = {
            "config_source": source,
            "config_sha256": dummy_weights.config_sha256(raw),
            "model_type": raw.get("model_type"),
            "seed": dummy_weights.DUMMY_SEED,
            "init": "transformers _init_weights (normal, std = initializer_range)",
            "route": route,
        }
        return model, tokenizer, info

    def unload(self) -> None:
        """Drop the model and free accelerator memory."""
        self.model = self.tokenizer = None
        gc.collect()
        torch = self._torch
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- tokens ----------------------------------------------------------------------------

    def _require(self) -> None:
        if self.model is None:
            raise RuntimeError("PyTorchBackend: call load() first")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        self._require()
        if self.tokenizer is None:
            raise ModelLoadError("text workloads need model.tokenizer with weights: dummy")
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def vocab_token_ids(self) -> list[int]:
        """Sorted ordinary token ids: the tokenizer's vocabulary minus special and added tokens,
        or, for a dummy model without a tokenizer, ``range(vocab_size)`` minus bos/eos/pad."""
        self._require()
        if self._vocab is None:
            tok = self.tokenizer
            rows = self.model.get_input_embeddings().num_embeddings
            if tok is None:
                from harness.models.dummy_weights import dummy_vocab_token_ids

                self._vocab = [i for i in dummy_vocab_token_ids(self._model_config) if i < rows]
            else:
                self._vocab = ordinary_token_ids(tok, rows)
        return self._vocab

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        prompts: list[Prompt],
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> list[Generation]:
        """One static, left-padded batch, greedy unless ``sampling.do_sample``.

        ``t_start`` is read just before ``generate()``; ``token_times[i]`` is when decoding step i
        finished (shared by the whole batch). A request's ``tokens_out`` counts its generated ids
        up to and including its first EOS (all of them with ``exact``, where EOS is suppressed);
        ``tokens_in`` is its prompt length without padding. Sampling is seeded with
        ``torch.manual_seed(sampling.seed)`` before every batch, so a batch is reproducible.
        """
        self._require()
        if not prompts:
            return []
        if any(not p.token_ids for p in prompts):
            raise ValueError("every prompt needs at least one token")
        from transformers import GenerationConfig

        from harness.window.timing import TokenTimestampStreamer, count_output_tokens

        torch = self._torch
        width = max(len(p.token_ids) for p in prompts)
        check_context(self.model, width, max_new_tokens)
        ids = torch.full((len(prompts), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            n = len(prompt.token_ids)
            ids[row, width - n :] = torch.tensor(prompt.token_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        # Unset fields are filled from model.generation_config, which load() reduced to token ids.
        extra = self.engine.generation if self.engine is not None else {}
        gen_config = GenerationConfig(
            **generation_kwargs(
                sampling, max_new_tokens, exact, sorted(self._eos_ids), self._pad_id, extra
            )
        )
        sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        streamer = TokenTimestampStreamer(synchronize=sync)
        if sampling.do_sample:
            torch.manual_seed(sampling.seed)

        try:
            t_start = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    generation_config=gen_config,
                    streamer=streamer,
                )
        except (MemoryError, torch.OutOfMemoryError) as exc:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # so the next, smaller experiment can still run
            raise BackendOOM(
                f"out of memory generating {len(prompts)}x{max_new_tokens} tokens "
                f"(prompt width {width}): {error_line(exc)}"
            ) from exc

        generated = out[:, width:].tolist()
        steps = streamer.step_times
        if len(steps) != len(generated[0]):
            # Each step must be one put(); anything else means transformers changed its contract.
            raise RuntimeError(
                f"streamer saw {len(steps)} steps but generate returned {len(generated[0])} tokens"
            )
        results = []
        for prompt, row in zip(prompts, generated, strict=True):
            n_out = count_output_tokens(row, self._eos_ids, exact)
            text = None
            if self.tokenizer is not None:
                text = self.tokenizer.decode(row[:n_out], skip_special_tokens=True)
            results.append(
                Generation(
                    tokens_in=len(prompt.token_ids),
                    tokens_out=n_out,
                    t_start=t_start,
                    token_times=steps[:n_out],
                    text=text,
                )
            )
        return results

    # -- FLOPs -----------------------------------------------------------------------------

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """Forward FLOPs per token averaged over ``sequence_length`` tokens (harness.window.flops).
        Not cached here: the protocol caches per load group, for every backend alike."""
        from harness.window.flops import estimate_flops_per_token, estimate_from_config

        model = self.model
        config = model.config if model is not None else None
        if (self.config.get("pytorch") or {}).get("quantization") and config is not None:
            # bitsandbytes packs 4-bit weights (numel halves) and swaps the Linear modules: count
            # the architecture from its config instead, as the unquantised model computes it.
            return estimate_from_config(config, sequence_length)
        return estimate_flops_per_token(model, config, sequence_length)


def check_context(model: Any, prompt_tokens: int, max_new_tokens: int) -> None:
    """Refuse a batch that cannot fit the model's context (``max_position_embeddings``):
    transformers would otherwise generate past it for minutes (until the timeout) or fail deep
    inside attention; llama.cpp refuses such a prompt at once, and so do we."""
    from harness.workloads import WorkloadError

    config = getattr(model, "config", None)
    context = getattr(config, "max_position_embeddings", None)
    if not isinstance(context, int) or context <= 0:
        return
    if prompt_tokens + max_new_tokens > context:
        raise WorkloadError(
            f"a prompt of {prompt_tokens} tokens plus max_new_tokens={max_new_tokens} exceeds "
            f"the model's context of {context} tokens (max_position_embeddings); shorten the "
            "prompts or lower max_new_tokens"
        )
