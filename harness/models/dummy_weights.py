"""Bundled model architectures for ``weights: dummy`` (random weights, no download).

A model's cost per token depends on its architecture (layer count, widths, attention heads,
vocabulary), not on the values of its weights. ``harness/models/configs/`` holds the Hugging Face
``config.json`` of popular models, copied value for value from their Hub repositories (each file's
``_lembench_source`` says where the values were checked), so every backend can build the real
architecture with random weights on a machine without the Hub.

Light to import: json and pathlib only (torch and transformers are imported inside
``build_random_model``), so the controller can list and check the bundled models, and engines that
want a model folder (vLLM, TensorRT-LLM) get one from ``config_dir``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

CONFIGS_DIR = Path(__file__).with_name("configs")
# Keys lembench adds to a bundled file; they are not part of the model's config.json.
_OWN_KEYS = ("_lembench_model_id", "_lembench_source")
DUMMY_SEED = 0  # the random initialisation is seeded, so a dummy model is the same on every run


@cache
def _index() -> dict[str, Path]:
    """Lower-cased model id -> bundled file (the id is stored inside each file)."""
    index: dict[str, Path] = {}
    for path in sorted(CONFIGS_DIR.glob("*.json")):
        model_id = json.loads(path.read_text(encoding="utf-8"))["_lembench_model_id"]
        index[model_id.lower()] = path
    return index


def bundled_model_ids() -> list[str]:
    """Hub ids of every bundled architecture, sorted case-insensitively."""
    return sorted((_read(p)["_lembench_model_id"] for p in _index().values()), key=str.lower)


@cache
def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _path(model_id: str) -> Path:
    path = _index().get(model_id.strip().lower())
    if path is None:
        ids = bundled_model_ids()
        close = difflib.get_close_matches(model_id, ids, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"no bundled architecture for {model_id!r}{hint} (bundled: {', '.join(ids)}). "
            "Use weights: real, or point model at a local folder holding a config.json."
        )
    return path


def bundled_config(model_id: str) -> dict[str, Any]:
    """The Hugging Face ``config.json`` of ``model_id`` as a dict (a fresh copy).

    The id matches case-insensitively; an unknown id raises KeyError naming close ids.
    """
    data = _read(_path(model_id))
    return json.loads(json.dumps({k: v for k, v in data.items() if k not in _OWN_KEYS}))


def source_note(model_id: str) -> str:
    """Where the bundled values of ``model_id`` come from (for result provenance)."""
    return str(_read(_path(model_id))["_lembench_source"])


def config_sha256(config: dict[str, Any]) -> str:
    """SHA-256 of a config in canonical JSON form (identifies the architecture in results)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _cache_root() -> Path:
    base = os.environ.get("LEMBENCH_CACHE_DIR")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "lembench") / "dummy"


def config_dir(model_id: str, root: Path | None = None) -> Path:
    """A folder holding ``config.json`` of ``model_id`` (for engines that load a model folder).

    Written once under ``$LEMBENCH_CACHE_DIR/dummy/configs`` (default ``~/.cache/lembench``),
    keyed by the config's hash, atomically (a temporary file renamed into place), so concurrent
    harness processes never see a half-written file.
    """
    config = bundled_config(model_id)
    digest = config_sha256(config)[:16]
    name = _read(_path(model_id))["_lembench_model_id"].replace("/", "--")
    folder = (root or _cache_root() / "configs") / f"{name}-{digest}"
    target = folder / "config.json"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)
        os.chmod(tmp, 0o644)  # mkstemp files are private; a shared cache must be readable
        os.replace(tmp, target)
    return folder


def special_token_ids(config: dict[str, Any]) -> set[int]:
    """bos/eos/pad ids named by a config (``eos_token_id`` may be a list)."""
    ids: set[int] = set()
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = config.get(key)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def dummy_vocab_token_ids(config: dict[str, Any]) -> list[int]:
    """Token ids for synthetic prompts of a dummy model: ``range(vocab_size)`` minus the config's
    bos/eos/pad ids (there is no tokenizer to name other special tokens)."""
    excluded = special_token_ids(config)
    return [i for i in range(int(config["vocab_size"])) if i not in excluded]


def model_config(model_ref: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The config.json (dict) a dummy model of the resolved ``model_ref`` is built from, and where
    it came from: the bundled architecture of a Hub id, or a local folder's own config.json.

    Raises KeyError (unknown Hub id, with close ids) or ValueError (a kind without a config)."""
    kind, ref = model_ref["kind"], model_ref["ref"]
    if kind == "hf":
        return bundled_config(ref), source_note(ref)
    if kind == "path" and not model_ref.get("gguf_file"):
        path = Path(ref) / "config.json"
        if not path.is_file():
            raise ValueError(f"weights: dummy needs {path} (the model's config.json)")
        return json.loads(path.read_text(encoding="utf-8")), f"local file {path}"
    raise ValueError(
        "weights: dummy needs a Hugging Face id with a bundled architecture or a model folder "
        f"with a config.json, not a {kind} model (GGUF files carry their own weights)"
    )


def build_random_model(
    raw: dict[str, Any], device: Any, load_kwargs: dict[str, Any]
) -> tuple[Any, str]:
    """Build the architecture of ``raw`` (a config.json dict) with seeded random weights.

    Uses transformers' own initialisation (``_init_weights``: normal with std
    ``initializer_range``) after ``torch.manual_seed(DUMMY_SEED)``. ``load_kwargs`` are the
    ``from_pretrained`` kwargs of the run (dtype, attn_implementation, quantization_config,
    device_map, distributed_config). Returns the model and the route taken:

    - ``from_config``: built directly on ``device`` inside a ``torch.device`` context, so an 8B
      model is initialised by the GPU in seconds and never passes through host memory;
    - ``from_config+from_pretrained(state_dict)``: bitsandbytes, device_map and tensor-parallel
      runs need transformers' loading path. The random weights are built once (on the GPU for
      bitsandbytes, in host memory for sharding) and handed to the concrete class's
      ``from_pretrained(None, config=..., state_dict=...)``, which quantises / places them exactly
      as it does a checkpoint's tensors (transformers 5 accepts a state_dict without a path there,
      not on the Auto class). Peak memory is the unquantised model plus the loaded one.

    torch and transformers are imported here, so this module stays light to import.
    """
    import torch
    import transformers

    config = transformers.AutoConfig.for_model(**raw)
    build = {k: load_kwargs[k] for k in ("dtype", "attn_implementation") if k in load_kwargs}
    needs_loader = bool({"quantization_config", "distributed_config"} & load_kwargs.keys())
    direct = not needs_loader and load_kwargs.get("device_map") in (None, str(device))
    target = device if direct or "quantization_config" in load_kwargs else torch.device("cpu")
    torch.manual_seed(DUMMY_SEED)  # seeds the CPU and every CUDA device
    with torch.device(target):
        model = transformers.AutoModelForCausalLM.from_config(config, **build)
    if direct:
        return model, "from_config"
    state, model_cls = model.state_dict(), type(model)
    del model
    loaded = load_random_weights(model_cls, config, state, load_kwargs)
    return loaded, "from_config+from_pretrained(state_dict)"


def load_random_weights(
    model_cls: Any, config: Any, state_dict: dict[str, Any], load_kwargs: dict[str, Any]
) -> Any:
    """Load ``state_dict`` through ``model_cls.from_pretrained`` as if it were a checkpoint."""
    return model_cls.from_pretrained(None, config=config, state_dict=state_dict, **load_kwargs)
