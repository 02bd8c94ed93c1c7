"""The backend protocol: what every inference engine offers the measurement protocol.

A backend is created once per load group (one model load), then asked to generate batch after batch.
It reports real per-token timestamps (``time.perf_counter``, the clock of the measured window) and
token counts taken from what it actually produced, never from what was asked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.contract.descriptions import BackendDescription
from harness.hardware.threads import ThreadSetting


class BackendUnavailable(RuntimeError):
    """The engine or a library it needs cannot be imported here (exit code BACKEND_UNAVAILABLE)."""


class ModelLoadError(RuntimeError):
    """The model cannot be found or loaded (exit code MODEL_LOAD_ERROR)."""


class BackendOOM(RuntimeError):
    """Out of memory in the backend (CUDA OOM, host allocation failure)."""


@dataclass(frozen=True)
class Prompt:
    """One request's input. ``token_ids`` is what the backend feeds the model (exact length);
    ``text`` is kept when the workload had text (e.g. HumanEval, for later scoring)."""

    token_ids: list[int]
    text: str | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class Sampling:
    """How tokens are chosen (``harness.workloads.decoding`` resolves a suite's ``decoding:``
    block).

    ``do_sample=False`` is greedy decoding and every other field is then ignored. ``top_k=0`` and
    ``top_p=1.0`` and ``min_p=0.0`` switch those filters off. ``seed`` seeds the engine's sampler
    (recorded in the result with the rest of the experiment's config).
    """

    preset: str = "deterministic"
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for results and engine-option mappings."""
        return dict(self.__dict__)


GREEDY = Sampling()


@dataclass
class Generation:
    """What one request produced. Times are ``time.perf_counter()`` values (seconds).

    ``token_times[i]`` is when output token i became available on the host; ``t_start`` is when the
    request was submitted (for static batches: when its batch started). ``t_scheduled`` is when the
    engine itself says it took the request out of its queue and began its prefill (serving engines
    that report it, converted to this clock); None when the engine does not say, and then the
    time between submission and first token is queue and prefill together.
    """

    tokens_in: int
    tokens_out: int
    t_start: float
    token_times: list[float]
    text: str | None = None
    t_scheduled: float | None = None
    #: The engine's own account of this request where it reports one (Ollama's durations and
    #: counts, LM Studio's stats), stored per request beside lembench's client-side times.
    #: JSON-safe; None for engines that report nothing.
    engine_stats: dict[str, Any] | None = None

    @property
    def t_first_token(self) -> float | None:
        return self.token_times[0] if self.token_times else None

    @property
    def t_end(self) -> float:
        return self.token_times[-1] if self.token_times else self.t_start


@dataclass(frozen=True)
class FlopsEstimate:
    """Forward FLOPs per token and how they were obtained (calflops | analytical | params_x2).

    ``active_params``: parameters one token passes through (a MoE's routed experts count with
    experts-per-token / experts); None when the same as ``params``. ``unquantised_params``: the
    input embedding plus an untied LM head, which weight quantisation leaves at full width (for
    MBU's stored bytes); None when unknown."""

    per_token: float | None
    method: str
    params: int | None = None
    sequence_length: int | None = None
    note: str = ""
    active_params: int | None = None
    unquantised_params: int | None = None


@dataclass
class LoadInfo:
    """What was loaded, for the result's provenance."""

    device: str
    dtype: str
    load_time_s: float
    model: dict[str, Any] = field(default_factory=dict)  # resolved source, file hashes, cache used
    versions: dict[str, str | None] = field(default_factory=dict)  # library versions


class Backend(ABC):
    """Base class of inference backends.

    ``__init__`` must not load anything heavy; ``load`` does. ``config`` is the first experiment's
    expanded config: everything that defines the load group (backend, model, precision, device,
    backend options) is the same for every experiment of the group.
    """

    #: Everything the rest of lembench knows about this backend (registry, suite schema, images,
    #: doctor, environment). A built-in backend class defines its own; ``name`` and
    #: ``supports_traffic`` then follow from it (see ``__init_subclass__``).
    description: ClassVar[BackendDescription]
    name: str = ""
    # Serving engines (an OpenAI-compatible server, vLLM's async engine, ...) accept requests one
    # at a time while others run: they implement ``agenerate`` and may take a ``traffic:`` block.
    supports_traffic: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take ``name`` and ``supports_traffic`` from the class's own description, so they are
        said once (a class that sets them itself keeps its values)."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("description")
        if isinstance(own, BackendDescription):
            if "name" not in cls.__dict__:
                cls.name = own.name
            if "supports_traffic" not in cls.__dict__:
                cls.supports_traffic = own.traffic

    def __init__(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        self.model_ref = model
        self.config = config
        # The CPU thread count the engine computes with (harness.hardware.threads), set by
        # ``load`` of backends that compute on this host; None for remote servers.
        self.threads: ThreadSetting | None = None

    @property
    def warmup_per_shape(self) -> bool:
        """Whether each batch shape needs its own warmup (GPU kernels, autotuning, compiled
        graphs, a remote server's state): True unless a backend knows better after ``load``."""
        return True

    @abstractmethod
    def load(self) -> LoadInfo:
        """Load model and tokenizer. Raise BackendUnavailable, ModelLoadError or BackendOOM."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Tokenize ``text`` without special tokens (for text workloads)."""

    @abstractmethod
    def vocab_token_ids(self) -> list[int]:
        """Ordinary (non-special) token ids, from which synthetic prompts are drawn."""

    @abstractmethod
    def generate(
        self,
        prompts: list[Prompt],
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> list[Generation]:
        """Generate for one batch of prompts (greedily unless ``sampling.do_sample``).

        With ``exact`` every request produces exactly ``max_new_tokens`` tokens (EOS suppressed);
        otherwise at most that many."""

    async def agenerate(
        self,
        prompt: Prompt,
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> Generation:
        """Submit one request now and await its completion (serving backends only, see
        ``supports_traffic``). Runs on the process-wide event loop of ``harness.backends.aio``;
        ``t_start`` is the submission time, ``token_times`` the arrival of each streamed token."""
        raise NotImplementedError(f"the {self.name} backend does not serve traffic")

    @abstractmethod
    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        """Forward FLOPs per token at ``sequence_length`` tokens of context."""

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Release the model (default: nothing to do)."""


# -- helpers every backend uses ---------------------------------------------------------------


def library_version(dist: str) -> str | None:
    """Installed version of the distribution ``dist`` (None when it is not installed)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def error_line(exc: BaseException, limit: int = 500) -> str:
    """``Type: first line of the message``, capped: how engine errors reach results and logs."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:limit]


def ordinary_token_ids(tokenizer: Any, rows: int | None = None) -> list[int]:
    """Sorted ids of a Hugging Face tokenizer's vocabulary minus its special and added tokens
    (and ids at or above ``rows``, the embedding's size, when given): what synthetic prompts are
    drawn from, so that every backend with the same tokenizer draws the same prompts."""
    excluded = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    return sorted(
        i
        for i in set(tokenizer.get_vocab().values())
        if i not in excluded and i >= 0 and (rows is None or i < rows)
    )
