"""PyTorch / Hugging Face transformers backend.

Loads Hub ids, local model folders and GGUF files (dequantised by transformers; the converted model
is cached on disk, see ``harness.gguf_cache``) and generates static batches greedily with real
per-step timestamps (``harness.timing``). torch and transformers are imported inside ``load()``,
so importing this module is cheap and works without them.
"""

from __future__ import annotations

import gc
import importlib.metadata
import time
from pathlib import Path
from typing import Any

from harness.backends.base import (
    Backend,
    BackendOOM,
    BackendUnavailable,
    FlopsEstimate,
    Generation,
    LoadInfo,
    ModelLoadError,
    Prompt,
)

INSTALL_HINT = "pip install lembench[pytorch]"
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# Keys of a model's generation config that stay in force; everything else is reset (see load()).
_KEPT_GENERATION_KEYS = {"eos_token_id", "bos_token_id", "pad_token_id", "transformers_version"}
_GENERATION_DEFAULTS = {"use_cache": True, "_from_model_config": True}
_VERSIONED = ("torch", "transformers", "accelerate", "gguf", "calflops", "tokenizers",
              "safetensors")  # fmt: skip


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:500]


class PyTorchBackend(Backend):
    """transformers ``AutoModelForCausalLM`` on CPU or CUDA, fp32/fp16/bf16."""

    name = "pytorch"

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self.model: Any = None
        self.tokenizer: Any = None
        self.device: Any = None
        self._torch: Any = None
        self._pad_id: int = 0
        self._eos_ids: frozenset[int] = frozenset()
        self._vocab: list[int] | None = None

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Load model and tokenizer onto the configured device and dtype."""
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
        if opts.get("threads"):
            torch.set_num_threads(int(opts["threads"]))
        self.device = self._pick_device(torch, str(self.config.get("device", "auto")))
        kwargs: dict[str, Any] = {
            "dtype": getattr(torch, DTYPES[self.config.get("precision", "fp32")])
        }
        if opts.get("attn_implementation"):
            kwargs["attn_implementation"] = opts["attn_implementation"]
        if self.device.type == "cuda":
            kwargs["device_map"] = str(self.device)  # load straight onto the GPU

        t0 = time.perf_counter()
        try:
            model, tokenizer, info = self._load_weights(transformers, kwargs)
            model.to(self.device)
            model.eval()
        except (BackendUnavailable, ModelLoadError, BackendOOM):
            raise
        except (MemoryError, torch.OutOfMemoryError) as exc:
            raise BackendOOM(f"out of memory loading the model: {_one_line(exc)}") from exc
        except ImportError as exc:
            raise BackendUnavailable(f"{_one_line(exc)} ({INSTALL_HINT})") from exc
        except Exception as exc:  # missing files, hub failures, unsupported formats: all one class
            raise ModelLoadError(
                f"cannot load model {self.model_ref.get('ref')!r}: {_one_line(exc)}"
            ) from exc
        load_time = time.perf_counter() - t0

        if tokenizer.pad_token_id is None:
            # Batches are left-padded; a model without a pad token pads with EOS (masked anyway).
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        self.model, self.tokenizer = model, tokenizer
        shipped = model.generation_config
        eos = shipped.eos_token_id if shipped.eos_token_id is not None else tokenizer.eos_token_id
        self._eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
        pad = tokenizer.pad_token_id
        self._pad_id = int(pad if pad is not None else next(iter(self._eos_ids), 0))
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
            load_time_s=round(load_time, 3),
            params=int(sum(p.numel() for p in model.parameters())),
            attn_implementation=getattr(model.config, "_attn_implementation", None),
            threads=torch.get_num_threads(),
        )
        return LoadInfo(
            device=str(self.device),
            dtype=str(model.dtype).removeprefix("torch."),
            load_time_s=load_time,
            model=info,
            versions={name: _version(name) for name in _VERSIONED},
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
        from harness.models import local_file

        ref = self.model_ref
        path = local_file(ref)
        if path is None and ref["kind"] == "path" and ref.get("gguf_file"):
            path = Path(ref["ref"]) / ref["gguf_file"]
        if path is not None and not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        return path

    def _load_weights(
        self, transformers: Any, kwargs: dict[str, Any]
    ) -> tuple[Any, Any, dict[str, Any]]:
        auto_model, auto_tok = transformers.AutoModelForCausalLM, transformers.AutoTokenizer
        ref = self.model_ref
        tok_source = ref.get("tokenizer")
        info: dict[str, Any] = {
            "kind": ref["kind"],
            "ref": ref["ref"],
            "gguf_file": ref.get("gguf_file"),
            "revision": ref.get("revision"),
            "tokenizer": tok_source,
        }
        gguf = self._gguf_path()
        if gguf is not None:
            from harness.gguf_cache import converted_source

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
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def vocab_token_ids(self) -> list[int]:
        """Sorted ids of the tokenizer's vocabulary, minus special and added tokens."""
        self._require()
        if self._vocab is None:
            tok = self.tokenizer
            excluded = set(tok.all_special_ids) | set(tok.get_added_vocab().values())
            rows = self.model.get_input_embeddings().num_embeddings
            self._vocab = sorted(
                i for i in set(tok.get_vocab().values()) if i not in excluded and 0 <= i < rows
            )
        return self._vocab

    # -- generation ------------------------------------------------------------------------

    def generate(self, prompts: list[Prompt], max_new_tokens: int, exact: bool) -> list[Generation]:
        """One static, left-padded, greedy batch.

        ``t_start`` is read just before ``generate()``; ``token_times[i]`` is when decoding step i
        finished (shared by the whole batch). A request's ``tokens_out`` counts its generated ids
        up to and including its first EOS (all of them with ``exact``, where EOS is suppressed);
        ``tokens_in`` is its prompt length without padding.
        """
        self._require()
        if not prompts:
            return []
        if any(not p.token_ids for p in prompts):
            raise ValueError("every prompt needs at least one token")
        from transformers import GenerationConfig

        from harness.timing import TokenTimestampStreamer, count_output_tokens

        torch = self._torch
        width = max(len(p.token_ids) for p in prompts)
        ids = torch.full((len(prompts), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            n = len(prompt.token_ids)
            ids[row, width - n :] = torch.tensor(prompt.token_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        # Unset fields are filled from model.generation_config, which load() reduced to token ids.
        gen_config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens if exact else 0,
            eos_token_id=sorted(self._eos_ids) or None,
            pad_token_id=self._pad_id,
        )
        sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        streamer = TokenTimestampStreamer(synchronize=sync)

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
                f"(prompt width {width}): {_one_line(exc)}"
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
            results.append(
                Generation(
                    tokens_in=len(prompt.token_ids),
                    tokens_out=n_out,
                    t_start=t_start,
                    token_times=steps[:n_out],
                    text=self.tokenizer.decode(row[:n_out], skip_special_tokens=True),
                )
            )
        return results

    # -- FLOPs -----------------------------------------------------------------------------

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """Forward FLOPs per token averaged over ``sequence_length`` tokens (harness.flops).
        Not cached here: the protocol caches per load group, for every backend alike."""
        from harness.flops import estimate_flops_per_token

        model = self.model
        config = model.config if model is not None else None
        return estimate_flops_per_token(model, config, sequence_length)
