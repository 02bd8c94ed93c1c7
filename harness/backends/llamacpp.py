"""llama.cpp backend through llama-cpp-python's bindings of ``llama.h`` (pinned: 0.3.16).

Why the low-level API and not ``llama_cpp.Llama``: ``Llama(...)`` has no ``n_seq_max`` argument
(an unknown keyword lands in its ``**kwargs`` and is silently dropped), so its context holds one
sequence, and it always allocates that context at construction. Batched decoding needs a context
with one sequence per prompt, so this backend loads the model and creates its own context with
``llama_model_load_from_file`` / ``llama_init_from_model``, exactly what ``Llama`` does inside.

``batching: native`` (default) follows llama.cpp's ``examples/batched``: every prompt gets its own
``seq_id`` in one ``llama_batch``, logits are requested for each prompt's last token only, then one
``llama_decode`` per step carries the newest token of every live sequence. ``sequential`` runs the
batch's prompts one after another. Both take a host timestamp per step, after the step's tokens were
chosen. Token choice happens here, in numpy: argmax when greedy, else :func:`choose_token`.
Option mapping, token choice and the FLOPs inputs live in :mod:`harness.backends.llamacpp_options`.
llama_cpp and numpy are imported inside ``load()``/the functions that need them, so importing this
module is cheap and works without the engine.
"""

from __future__ import annotations

import ctypes
import logging
import time
from pathlib import Path
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
    library_version,
)
from harness.backends.llamacpp_options import (
    CTX_ALIGN,
    OPTIONS_SCHEMA,
    _flops_inputs,
    _round_up,
    choose_token,
    engine_args,
    is_ordinary,
)
from harness.contract.descriptions import BackendDescription
from harness.hardware.threads import allowed_cpus, resolve_threads

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install 'lembench[llamacpp]' (or ./setup.sh --llamacpp; see docs/backends/llamacpp.md)"
)
GGML_TYPES = {"f32": 0, "f16": 1, "bf16": 30}  # enum ggml_type (ggml.h); llama_cpp.py lacks BF16
# engine_args()["context"] entries copied onto llama_context_params as they are.
_CTX_FIELDS = ("n_batch", "n_ubatch", "n_threads", "n_threads_batch", "flash_attn", "offload_kqv",
               "no_perf")  # fmt: skip


def _cpu_count() -> int:
    return allowed_cpus()  # the CPUs this process may use (containers, taskset)


def _hub_gguf(repo_id: str, filename: str, revision: str | None) -> Path:
    """One GGUF file of a Hugging Face repo, from the local Hub cache or downloaded into it
    (``huggingface_hub.hf_hub_download``; ``HF_HUB_OFFLINE=1`` uses the cache only)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise BackendUnavailable(
            f"loading {filename} from the Hugging Face repo {repo_id} needs huggingface_hub: "
            f"{INSTALL_HINT}"
        ) from exc
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision))
    except Exception as exc:  # offline, gated repo, missing file: one line says which
        raise ModelLoadError(
            f"could not get {filename} from the Hugging Face repo {repo_id}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        ) from exc


class _Context:
    """One ``llama_context`` plus the ``llama_batch`` used to feed it."""

    def __init__(self, lib: Any, model: Any, params: Any) -> None:
        self.lib = lib
        self.ptr = lib.llama_init_from_model(model, params)
        if not self.ptr:
            raise BackendOOM(
                f"llama_init_from_model failed for n_ctx={params.n_ctx}, "
                f"n_seq_max={params.n_seq_max} (most likely out of memory for the KV cache)"
            )
        self.n_ctx = int(lib.llama_n_ctx(self.ptr))
        self.n_seq_max = int(lib.llama_n_seq_max(self.ptr))
        self.n_batch = int(lib.llama_n_batch(self.ptr))  # llama.cpp clamps it to n_ctx
        self.n_ubatch = int(lib.llama_n_ubatch(self.ptr))
        # kv_unified is off by default: each sequence owns n_ctx / n_seq_max cells.
        self.per_seq = self.n_ctx if params.kv_unified else self.n_ctx // self.n_seq_max
        self.batch = lib.llama_batch_init(self.n_batch, 0, 1)

    def describe(self) -> dict[str, int]:
        return {
            "n_ctx": self.n_ctx,
            "n_seq_max": self.n_seq_max,
            "n_batch": self.n_batch,
            "n_ubatch": self.n_ubatch,
            "n_ctx_per_seq": self.per_seq,
        }

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` of (token, position, seq_id, wants_logits) entries."""
        b = self.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = seq
        b.n_tokens = len(entries)
        rc = self.lib.llama_decode(self.ptr, b)
        if rc != 0:  # 1: no KV slot (the context is too small), <0: error (llama.h)
            raise RuntimeError(f"llama_decode returned {rc} for {len(entries)} tokens")

    def close(self) -> None:
        if self.ptr:
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_free(self.ptr)
            self.ptr = None


class LlamaCppBackend(Backend):
    """A GGUF model in llama.cpp: CPU (or GPU layers with a CUDA build), native batching."""

    description = BackendDescription(
        name="llamacpp",
        summary="a GGUF model in llama.cpp (llama-cpp-python): CPU or GPU layers, native batching",
        options_schema=OPTIONS_SCHEMA,
        aliases=("llama.cpp", "llama-cpp"),
        streaming=True,
        quantisations=("gguf",),  # the GGUF file's own type (Q4_K_M, Q8_0, ...)
        imports=("llama_cpp",),
        distributions=("llama_cpp_python", "numpy", "gguf"),
        image="llamacpp",
        cpu_image="llamacpp",
        tested_on_hardware=True,
        install="./setup.sh --llamacpp (builds llama-cpp-python)",
        engine_distribution="llama_cpp_python",
    )

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(model, config)
        self._lib: Any = None
        self._model: Any = None
        self._vocab: Any = None
        self._ctx: _Context | None = None
        self._args: dict[str, Any] = {}  # engine_args(), context entries as last created
        self._requested: dict[str, Any] = {}  # engine_args()["context"] as configured
        self._n_vocab = 0
        self._eog: list[int] = []
        self._ordinary: list[int] | None = None
        self._flops_info: dict[str, Any] = {}

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Load the GGUF file and create the decoding context."""
        try:
            import llama_cpp
            from llama_cpp import llama_cpp as lib
        except ImportError as exc:
            raise BackendUnavailable(
                f"the llamacpp backend needs llama-cpp-python ({exc.name} is missing): "
                f"{INSTALL_HINT}"
            ) from exc
        if self.config.get("weights") == "dummy":
            raise ModelLoadError("the llamacpp backend has no dummy weights: give it a GGUF file")
        path = self._gguf_path()
        # llama-cpp-python routes llama.cpp's log through this logger: errors only.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        args = engine_args(
            self.config, gpu_offload=bool(lib.llama_supports_gpu_offload()), cpu_count=_cpu_count()
        )
        self._lib, self._args, self._requested = lib, args, dict(args["context"])
        opts = self.config.get("llamacpp") or {}
        self.threads = resolve_threads(self.config, opts.get("n_threads"))
        lib.llama_backend_init()
        params = lib.llama_model_default_params()
        params.n_gpu_layers = args["model"]["n_gpu_layers"]
        if "main_gpu" in args["model"]:
            params.split_mode = lib.LLAMA_SPLIT_MODE_NONE
            params.main_gpu = args["model"]["main_gpu"]
        t0 = time.perf_counter()
        model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ModelLoadError(f"llama.cpp could not load {path} (see the log above)")
        self._model = model
        self._vocab = lib.llama_model_get_vocab(model)
        self._n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self._eog = [t for t in range(self._n_vocab) if lib.llama_vocab_is_eog(self._vocab, t)]
        ctx = args["context"]
        if ctx["n_ctx"] is not None:
            self._ctx = self._new_context(ctx["n_seq_max"], ctx["n_ctx"])
        load_time = time.perf_counter() - t0

        from harness.models.gguf_cache import file_sha256

        meta = self._metadata()
        self._flops_info = _flops_inputs(path, meta, int(lib.llama_model_n_params(model)))
        desc = self._text(lib.llama_model_desc, 256)
        info = {
            "kind": self.model_ref["kind"],
            "ref": self.model_ref["ref"],
            "file": str(path),
            "gguf_sha256": file_sha256(path),
            "desc": desc,
            "architecture": meta.get("general.architecture"),
            "params": int(lib.llama_model_n_params(model)),
            "size_bytes": int(lib.llama_model_size(model)),
            # Stored bytes per decode step (GGUF tensor types), for MBU; None without gguf.
            "weight_bytes": self._flops_info.get("weight_bytes"),
            "n_vocab": self._n_vocab,
            "eog_token_ids": self._eog,
            # The same dict object ends up in every result of the load group; its context entries
            # are updated when a later, larger batch needs a larger context (see _ensure_context).
            "engine_args": args,
            "load_time_s": round(load_time, 3),
        }
        return LoadInfo(
            device=args["device"] if args["model"]["n_gpu_layers"] else "cpu",
            dtype=f"gguf {desc.rsplit(' ', 1)[-1]}, kv {args['context']['type_k']}",
            load_time_s=load_time,
            model=info,
            versions={
                "llama_cpp_python": getattr(
                    llama_cpp, "__version__", library_version("llama_cpp_python")
                ),
                "llama_cpp_system_info": lib.llama_print_system_info().decode().strip(),
                "numpy": library_version("numpy"),
                "gguf": library_version("gguf"),
            },
        )

    def _gguf_path(self) -> Path:
        from harness.models.refs import ModelRefError, local_file

        ref = self.model_ref
        try:
            path = local_file(ref)
        except ModelRefError as exc:
            raise ModelLoadError(str(exc)) from exc
        if path is None and ref["kind"] == "path" and ref.get("gguf_file"):
            path = Path(ref["ref"]) / ref["gguf_file"]
        if path is None and ref["kind"] == "hf" and ref.get("gguf_file"):
            path = _hub_gguf(ref["ref"], ref["gguf_file"], ref.get("revision"))
        if path is None:
            raise ModelLoadError(
                f"llamacpp needs a GGUF file: {ref['ref']!r} is a {ref['kind']!r} model "
                "(give a .gguf path, a folder or Hugging Face repo with gguf_file, or an alias "
                "such as smollm2-135m)"
            )
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        return path

    def _new_context(self, n_seq_max: int, n_ctx: int) -> _Context:
        lib, a = self._lib, self._requested
        params = lib.llama_context_default_params()
        for key in _CTX_FIELDS:
            setattr(params, key, a[key])
        params.type_k, params.type_v = GGML_TYPES[a["type_k"]], GGML_TYPES[a["type_v"]]
        params.n_seq_max, params.n_ctx = n_seq_max, n_ctx
        ctx = _Context(lib, self._model, params)
        # Results show what really ran (llama.cpp clamps n_batch to n_ctx); requests stay apart.
        self._args["context"].update(ctx.describe())
        return ctx

    def _ensure_context(self, n_seqs: int, per_seq: int) -> _Context:
        """A context holding ``n_seqs`` sequences of ``per_seq`` tokens: the current one when it
        fits (it only grows, so a short last batch never rebuilds it), else a new, larger one.
        A configured ``n_ctx`` stays the total and is shared by more sequences."""
        ctx = self._ctx
        if ctx is not None and ctx.n_seq_max >= n_seqs and ctx.per_seq >= per_seq:
            return ctx
        seqs = max(n_seqs, ctx.n_seq_max if ctx else 1)
        opts = self.config.get("llamacpp") or {}
        if "n_ctx" in opts:
            n_ctx = int(opts["n_ctx"]) or int(self._lib.llama_model_n_ctx_train(self._model))
            if n_ctx // seqs < per_seq:
                raise ValueError(
                    f"llamacpp n_ctx={n_ctx} cannot hold {seqs} sequence(s) of {per_seq} tokens "
                    f"(n_ctx / n_seq_max = {n_ctx // seqs}); raise n_ctx"
                )
        else:
            n_ctx = seqs * _round_up(max(per_seq, ctx.per_seq if ctx else 0), CTX_ALIGN)
        if ctx is not None:
            log.info("llamacpp: new context, n_seq_max %d, n_ctx %d", seqs, n_ctx)
            ctx.close()
        self._ctx = None
        self._ctx = self._new_context(seqs, n_ctx)
        return self._ctx

    def unload(self) -> None:
        """Free the context and the model."""
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None
        if self._model:
            self._lib.llama_model_free(self._model)
            self._model = None

    # -- tokens ----------------------------------------------------------------------------

    def _require(self) -> None:
        if not self._model:
            raise RuntimeError("LlamaCppBackend: call load() first")

    def _text(self, fn: Any, size: int, *args: Any) -> str:
        buf = ctypes.create_string_buffer(size)
        n = fn(self._model, *args, buf, size)
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else ""

    def _metadata(self) -> dict[str, str]:
        lib, out = self._lib, {}
        for i in range(lib.llama_model_meta_count(self._model)):
            key = self._text(lib.llama_model_meta_key_by_index, 256, i)
            if not key.startswith("tokenizer."):  # token lists and templates are not needed
                out[key] = self._text(lib.llama_model_meta_val_str_by_index, 4096, i)
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: no BOS/EOS added, special-token text not parsed."""
        self._require()
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            buf = (self._lib.llama_token * size)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, False, False)
            if n >= 0:
                return list(buf[:n])
            size = -n  # too small: llama_tokenize returns minus the needed size

    def decode_text(self, ids: list[int]) -> str:
        """Text of ``ids`` without special tokens (like ``skip_special_tokens``)."""
        self._require()
        out, buf = b"", ctypes.create_string_buffer(256)
        for t in ids:
            n = self._lib.llama_token_to_piece(self._vocab, t, buf, len(buf), 0, False)
            out += buf.raw[: max(n, 0)]
        return out.decode("utf-8", errors="replace")

    def vocab_token_ids(self) -> list[int]:
        """Ids whose ``llama_vocab_get_attr`` marks ordinary text (see :func:`is_ordinary`)."""
        self._require()
        if self._ordinary is None:
            attr = self._lib.llama_vocab_get_attr
            self._ordinary = [t for t in range(self._n_vocab) if is_ordinary(attr(self._vocab, t))]
        return self._ordinary

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        prompts: list[Prompt],
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> list[Generation]:
        """One batch: natively batched (one sequence per prompt) or prompt after prompt.

        ``t_start``: native, when the batch started; sequential, when that prompt started.
        ``token_times[i]``: when step i's token was chosen on the host (shared by a native
        batch). ``tokens_out`` counts generated ids up to and including the first end-of-generation
        token (all of them with ``exact``, where such tokens are never chosen).
        """
        self._require()
        if not prompts:
            return []
        if any(not p.token_ids for p in prompts) or max_new_tokens < 1:
            raise ValueError("every prompt needs a token and max_new_tokens must be >= 1")
        native = self._args["batching"] == "native"
        groups = [prompts] if native else [[p] for p in prompts]
        per_seq = max(len(p.token_ids) for p in prompts) + max_new_tokens
        ctx = self._ensure_context(len(groups[0]), per_seq)
        results: list[Generation] = []
        for group in groups:
            results.extend(self._run(ctx, group, len(results), max_new_tokens, exact, sampling))
        return results

    def _run(
        self,
        ctx: _Context,
        group: list[Prompt],
        offset: int,
        max_new: int,
        exact: bool,
        sampling: Sampling,
    ) -> list[Generation]:
        import numpy as np

        from harness.window.timing import count_output_tokens

        lib = self._lib
        lib.llama_memory_clear(lib.llama_get_memory(ctx.ptr), True)  # nothing from earlier batches
        eog = frozenset(self._eog)
        banned = np.asarray(self._eog, dtype=np.int64) if exact else None
        # One generator per request, seeded by (seed, its index in the batch): native and
        # sequential draw the same tokens.
        rngs = [np.random.default_rng([sampling.seed, offset + j]) for j in range(len(group))]
        rows: list[list[int]] = [[] for _ in group]
        times: list[list[float]] = [[] for _ in group]
        penalised = sampling.do_sample and sampling.repetition_penalty != 1.0
        n_vocab = self._n_vocab

        def pick(i: int, seq: int) -> None:
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx.ptr, i), shape=(n_vocab,))
            history = group[seq].token_ids + rows[seq] if penalised else None
            rows[seq].append(choose_token(logits, sampling, rngs[seq], history, banned))

        t_start = time.perf_counter()
        prefill = [
            (tok, pos, seq, pos == len(p.token_ids) - 1)
            for seq, p in enumerate(group)
            for pos, tok in enumerate(p.token_ids)
        ]
        for c in range(0, len(prefill), ctx.n_batch):
            chunk = prefill[c : c + ctx.n_batch]
            ctx.decode(chunk)
            done = [(i, e[2]) for i, e in enumerate(chunk) if e[3]]
            for i, seq in done:
                pick(i, seq)
            now = time.perf_counter()
            for _, seq in done:
                times[seq].append(now)
        while True:
            live = [
                s
                for s, row in enumerate(rows)
                if len(row) < max_new and (exact or row[-1] not in eog)
            ]
            if not live:
                break
            for c in range(0, len(live), ctx.n_batch):
                chunk = live[c : c + ctx.n_batch]
                ctx.decode(
                    [
                        (rows[s][-1], len(group[s].token_ids) + len(rows[s]) - 1, s, True)
                        for s in chunk
                    ]
                )
                for i, s in enumerate(chunk):
                    pick(i, s)
                now = time.perf_counter()
                for s in chunk:
                    times[s].append(now)

        out = []
        for prompt, row, stamps in zip(group, rows, times, strict=True):
            n_out = count_output_tokens(row, eog, exact)
            out.append(
                Generation(
                    tokens_in=len(prompt.token_ids),
                    tokens_out=n_out,
                    t_start=t_start,
                    token_times=stamps[:n_out],
                    text=self.decode_text(row[:n_out]),
                )
            )
        return out

    # -- FLOPs -----------------------------------------------------------------------------

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """Forward FLOPs per token at ``sequence_length`` from the GGUF's own numbers: analytical
        (``2*N_matmul`` from its tensor sizes + the causal attention term of
        ``harness.window.flops``), else ``2 x parameters``."""
        from harness.window.flops import attention_flops_per_token

        f = self._flops_info
        params = f.get("params")
        if sequence_length >= 1 and f.get("matmul_params") and f.get("shape"):
            attention = attention_flops_per_token(SimpleNamespace(**f["shape"]), sequence_length)
            note = (
                f"analytical 2*N_matmul + 2*n_layers*s*d_attn from the GGUF: N_matmul="
                f"{f['matmul_params']} (tensor elements minus token_embd"
                f"{', plus it again as the tied LM head' if f['tied'] else ''}), attention "
                f"{attention:.4g}/token at s={sequence_length}"
            )
            return FlopsEstimate(
                2.0 * f["matmul_params"] + attention,
                "analytical",
                params,
                sequence_length,
                note,
                active_params=f.get("active_params"),
            )
        if params:
            note = "2 x parameters (llama_model_n_params); " + f.get("why", "")
            return FlopsEstimate(2.0 * params, "params_x2", params, sequence_length, note)
        return FlopsEstimate(None, "unavailable", None, sequence_length, f.get("why", ""))
