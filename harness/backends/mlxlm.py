"""Apple MLX through mlx-lm: the engine Mac users compare with llama.cpp; CPU (``mlx[cpu]``) on
Linux.

API used (mlx-lm 0.32, github:ml-explore/mlx-lm ``mlx_lm/generate.py``, ``mlx_lm/utils.py``):
``mlx_lm.load(path_or_hub_id)`` returns ``(model, TokenizerWrapper)``; ``stream_generate`` yields
one ``GenerationResponse`` per generated token (its ``token``; the end-of-sequence token comes as
the last response with ``finish_reason="stop"``); ``BatchGenerator.insert(prompts, max_tokens)``
then ``next_generated()`` returns one ``Response(uid, token, finish_reason, ...)`` per live sequence
per decoding step (what ``batch_generate`` does inside). Token times are host timestamps taken
when each response arrives (mlx evaluates lazily: the token is on the host by then).

``batching: native`` uses ``BatchGenerator`` (all prompts prefilled and decoded together) where the
installed mlx-lm has it, else falls back to ``sequential`` and says so in the result. Models:
a folder in Hugging Face layout (MLX-quantised ones from mlx-community too), a Hub id (mlx-lm's
own download), or a GGUF file/alias, dequantised once into lembench's GGUF cache
(:mod:`harness.models.gguf_cache`, needs transformers on the first load) and loaded from there.
mlx and mlx_lm are imported inside ``load()``, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
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
from harness.backends.mlxlm_options import (
    OPTIONS_SCHEMA,
    THREADS_NOTE,
    MlxArgs,
    engine_args,
    processor_args,
    sampler_args,
)
from harness.contract.descriptions import BackendDescription

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'lembench[mlx]' (mlx[cpu] + mlx-lm on Linux; see docs/backends/mlx.md)"


def logical_params(model: Any) -> tuple[int, int]:
    """``(parameters, embedding parameters)`` of an mlx-lm model as the unquantised model has
    them: a quantised layer's packed ``uint32`` weight holds ``32 / bits`` values per element and
    its scales/biases are not parameters of the architecture."""
    from mlx.utils import tree_flatten

    quantised = {name: m.bits for name, m in model.named_modules() if hasattr(m, "bits")}
    total = embed = 0
    for name, array in tree_flatten(model.parameters()):
        path, leaf = name.rsplit(".", 1) if "." in name else ("", name)
        if path in quantised:
            if leaf in ("scales", "biases"):
                continue
            n = array.size * 32 // quantised[path] if leaf == "weight" else array.size
        else:
            n = array.size
        total += n
        if path.endswith("embed_tokens") and leaf == "weight":
            embed = n
    return total, embed


class MlxBackend(Backend):
    """A causal LM in Apple MLX via mlx-lm: per-token streaming, native batch generation."""

    description = BackendDescription(
        name="mlx",
        summary="Apple MLX via mlx-lm: Metal on Apple silicon, CPU (mlx[cpu]) on Linux",
        option_block="mlx",
        options_schema=OPTIONS_SCHEMA,
        aliases=("mlx-lm", "mlx_lm"),
        streaming=True,
        quantisations=("mlx-affine",),
        imports=("mlx.core", "mlx_lm"),
        distributions=("mlx", "mlx-lm", "mlx-cpu", "mlx-metal"),
        tested_on_hardware=False,  # CPU here only; not yet run on Apple silicon by lembench
        install=INSTALL_HINT,
        engine_distribution="mlx-lm",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self._mx: Any = None
        self._model: Any = None
        self._tok: Any = None
        self._args: MlxArgs | None = None
        self._eos: list[int] = []
        self._vocab: list[int] | None = None
        self._shape: dict[str, Any] = {}
        self._params: tuple[int, int] = (0, 0)
        self._batch_generator: Any = None  # the class, when this mlx-lm has one

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Load the model with ``mlx_lm.load``, cast and (optionally) quantise it."""
        try:
            import mlx.core as mx
            import mlx_lm
        except ImportError as exc:
            raise BackendUnavailable(
                f"the mlx backend needs mlx and mlx-lm ({exc.name} is missing): {INSTALL_HINT}"
            ) from exc
        if self.config.get("weights") == "dummy":
            raise ModelLoadError("the mlx backend has no dummy weights: give it a model")
        try:
            args = engine_args(self.config, gpu_available=bool(mx.is_available(mx.gpu)))
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from exc
        if args.threads_requested is not None:
            log.warning("mlx: %s", THREADS_NOTE)
        self._mx, self._args = mx, args
        mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
        if args.device == "cpu":
            from harness.hardware.threads import SOURCE_ENGINE_FIXED, ThreadSetting, allowed_cpus

            # What really computes: one thread per operation, whatever was asked (THREADS_NOTE).
            self.threads = ThreadSetting(1, SOURCE_ENGINE_FIXED, allowed_cpus())
        try:
            from mlx_lm.generate import BatchGenerator

            self._batch_generator = BatchGenerator
        except ImportError:  # older mlx-lm: no batch generation
            self._batch_generator = None
        info = {k: self.model_ref.get(k) for k in ("kind", "ref", "gguf_file", "revision")}
        t0 = time.perf_counter()
        source = self._source(info)
        try:
            model, tok, config = mlx_lm.load(
                source, return_config=True, revision=self.model_ref.get("revision")
            )
            stored_quant = config.get("quantization")
            model.set_dtype(getattr(mx, args.dtype))  # floating parameters only (mlx.nn default)
            if args.quantize_bits is not None:
                if stored_quant:
                    raise ModelLoadError(
                        f"mlx quantize: {source} is already quantised ({stored_quant}); "
                        "leave quantize out or give unquantised weights"
                    )
                from mlx_lm.utils import quantize_model

                model, config = quantize_model(
                    model, config, args.quantize_group_size, args.quantize_bits
                )
            mx.eval(model.parameters())  # mlx is lazy: make the load really happen here
        except (BackendUnavailable, ModelLoadError):
            raise
        except MemoryError as exc:
            raise BackendOOM(f"out of memory loading the model: {error_line(exc)}") from exc
        except Exception as exc:  # missing files, unknown architectures, hub failures
            raise ModelLoadError(f"mlx_lm.load({source!r}) failed: {error_line(exc)}") from exc
        load_time = time.perf_counter() - t0
        self._model, self._tok = model, tok
        self._eos = sorted(int(t) for t in tok.eos_token_ids)
        margs = model.args
        self._shape = {
            "num_hidden_layers": margs.num_hidden_layers,
            "hidden_size": margs.hidden_size,
            "num_attention_heads": margs.num_attention_heads,
            "head_dim": getattr(margs, "head_dim", None)
            or margs.hidden_size // margs.num_attention_heads,
        }
        self._params = logical_params(model)
        batching = args.batching
        if batching == "native" and self._batch_generator is None:
            batching = "sequential"
            info["batching_note"] = "this mlx-lm has no BatchGenerator: ran sequential"
        info.update(
            source=source,
            architecture=getattr(margs, "model_type", None),
            params=self._params[0],
            tied_embeddings=bool(getattr(margs, "tie_word_embeddings", True)),
            quantization=config.get("quantization"),
            eos_token_ids=self._eos,
            engine_args={**args.to_dict(), "batching_used": batching},
            load_time_s=round(load_time, 3),
        )
        quant = config.get("quantization")
        bits = f", {quant['bits']}-bit affine g{quant['group_size']}" if quant else ""
        dtype = args.dtype + bits
        return LoadInfo(
            device=args.device,
            dtype=dtype,
            load_time_s=load_time,
            model=info,
            versions={
                "mlx": library_version("mlx"),
                "mlx-lm": library_version("mlx-lm"),
                "mlx-cpu": library_version("mlx-cpu"),
                "mlx-metal": library_version("mlx-metal"),
            },
        )

    def _source(self, info: dict[str, Any]) -> str:
        """What ``mlx_lm.load`` gets: the GGUF cache folder for GGUF models, else the folder or
        Hub id as given."""
        from harness.models.refs import ModelRefError, local_file

        ref = self.model_ref
        try:
            gguf = local_file(ref)
        except ModelRefError as exc:
            raise ModelLoadError(str(exc)) from exc
        if gguf is None and ref["kind"] == "path" and ref.get("gguf_file"):
            from pathlib import Path

            gguf = Path(ref["ref"]) / ref["gguf_file"]
        if gguf is None:
            return str(ref["ref"])
        if not gguf.is_file():
            raise ModelLoadError(f"GGUF file {gguf} does not exist")
        try:
            import transformers
        except ImportError as exc:
            raise BackendUnavailable(
                "the mlx backend reads a GGUF model through lembench's GGUF cache, which needs "
                f"transformers to convert it once: pip install transformers torch ({exc})"
            ) from exc
        from harness.models.gguf_cache import converted_source

        source, extra, cache = converted_source(gguf, transformers)
        if extra:  # the cache could not be written: mlx-lm cannot read the GGUF itself
            raise ModelLoadError(
                f"mlx needs the converted copy of {gguf}: {cache.get('cache_error')}"
            )
        info.update(cache)
        return source

    def unload(self) -> None:
        """Drop the model and free mlx's buffer cache."""
        self._model = self._tok = None
        if self._mx is not None:
            self._mx.clear_cache()

    # -- tokens ----------------------------------------------------------------------------

    def _require(self) -> None:
        if self._model is None:
            raise RuntimeError("MlxBackend: call load() first")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        self._require()
        return list(self._tok.encode(text, add_special_tokens=False))

    def vocab_token_ids(self) -> list[int]:
        """The tokenizer's ordinary ids (as every Hugging Face tokenizer backend draws them)."""
        self._require()
        if self._vocab is None:
            hf = getattr(self._tok, "_tokenizer", self._tok)
            self._vocab = ordinary_token_ids(hf, int(self._model.args.vocab_size))
        return self._vocab

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        prompts: list[Prompt],
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> list[Generation]:
        """One batch, natively batched (``BatchGenerator``) or prompt after prompt
        (``stream_generate``). ``tokens_out`` counts tokens up to and including the first
        end-of-sequence token (every token with ``exact``, where it is never chosen)."""
        self._require()
        if not prompts:
            return []
        if any(not p.token_ids for p in prompts) or max_new_tokens < 1:
            raise ValueError("every prompt needs a token and max_new_tokens must be >= 1")
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        self._mx.random.seed(sampling.seed)  # mlx-lm samples from mlx's global generator
        sampler = make_sampler(**sampler_args(sampling))
        processors = make_logits_processors(**processor_args(sampling, self._eos, exact))
        native = self._args.batching == "native" and self._batch_generator is not None
        if native:
            rows, times, t_start = self._native(prompts, max_new_tokens, exact, sampler, processors)
            starts = [t_start] * len(prompts)
        else:
            rows, times, starts = [], [], []
            for p in prompts:
                row, stamps, t0 = self._stream(p, max_new_tokens, sampler, processors)
                rows.append(row)
                times.append(stamps)
                starts.append(t0)
        from harness.window.timing import count_output_tokens

        out = []
        eos = frozenset(self._eos)
        for prompt, row, stamps, t0 in zip(prompts, rows, times, starts, strict=True):
            n = count_output_tokens(row, eos, exact)
            out.append(
                Generation(
                    tokens_in=len(prompt.token_ids),
                    tokens_out=n,
                    t_start=t0,
                    token_times=stamps[:n],
                    text=self._tok.decode(row[:n]),
                )
            )
        return out

    def _stream(
        self, prompt: Prompt, max_new: int, sampler: Any, processors: list[Any]
    ) -> tuple[list[int], list[float], float]:
        from mlx_lm import stream_generate

        kwargs: dict[str, Any] = {"prefill_step_size": self._args.prefill_step_size}
        if self._args.max_kv_size:
            kwargs["max_kv_size"] = self._args.max_kv_size
        row: list[int] = []
        stamps: list[float] = []
        t0 = time.perf_counter()
        for response in stream_generate(
            self._model,
            self._tok,
            prompt.token_ids,
            max_tokens=max_new,
            sampler=sampler,
            logits_processors=processors or None,
            **kwargs,
        ):
            stamps.append(time.perf_counter())
            row.append(int(response.token))
        return row, stamps, t0

    def _native(
        self,
        prompts: list[Prompt],
        max_new: int,
        exact: bool,
        sampler: Any,
        processors: list[Any],
    ) -> tuple[list[list[int]], list[list[float]], float]:
        n = len(prompts)
        gen = self._batch_generator(
            self._model,
            max_tokens=max_new,
            # With exact lengths no stop token: EOS is biased away and every row runs to max_new.
            stop_tokens=None if exact else [[t] for t in self._eos],
            sampler=sampler,
            logits_processors=processors or None,
            completion_batch_size=n,
            prefill_batch_size=n,
            prefill_step_size=self._args.prefill_step_size,
        )
        rows: dict[int, list[int]] = {}
        times: dict[int, list[float]] = {}
        try:
            t_start = time.perf_counter()
            uids = gen.insert([list(p.token_ids) for p in prompts], [max_new] * n)
            for uid in uids:
                rows[uid], times[uid] = [], []
            while responses := gen.next_generated():
                now = time.perf_counter()
                for r in responses:
                    rows[r.uid].append(int(r.token))
                    times[r.uid].append(now)
        finally:
            gen.close()
        return [rows[u] for u in uids], [times[u] for u in uids], t_start

    # -- FLOPs -----------------------------------------------------------------------------

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """Analytical ``2*N_matmul + attention`` (:mod:`harness.window.flops`'s definition) from
        the loaded model's parameter count (quantised layers counted as their unpacked size)."""
        from harness.window.flops import attention_flops_per_token

        params, embed = self._params
        if not params:
            return FlopsEstimate(None, "unavailable", None, sequence_length, "model not loaded")
        tied = bool(getattr(self._model.args, "tie_word_embeddings", True))
        matmul = params - embed + (embed if tied else 0)
        attention = attention_flops_per_token(SimpleNamespace(**self._shape), sequence_length)
        head = ", plus it again as the tied LM head" if tied else ""
        note = (
            f"analytical 2*N_matmul + 2*n_layers*s*d_attn from the mlx model: N_matmul={matmul} "
            f"(parameters minus the embedding{head}), attention {attention:.4g}/token at "
            f"s={sequence_length}"
        )
        return FlopsEstimate(2.0 * matmul + attention, "analytical", params, sequence_length, note)
