"""A disk cache of GGUF files converted to Hugging Face layout (safetensors + tokenizer).

transformers reads a GGUF file by dequantising every tensor to float (about 15-30 s for SmolLM2-135M
on two cores, minutes for larger models). The converted model only depends on the file's bytes and
the converting libraries, so it is saved once and loaded from the cache afterwards.

Layout: ``<root>/<key>/`` with ``key = <sha256[:16]>-tf<transformers>-gguf<gguf>``, where root is
``$LEMBENCH_CACHE_DIR/gguf`` or ``~/.cache/lembench/gguf``. An entry is written into a temporary
folder beside it and renamed into place in one step, with a marker file written last, so readers
only ever see complete entries and concurrent writers cannot corrupt each other (the loser of the
race discards its copy). No torch import here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "lembench-cache.json"
_CHUNK = 1 << 20


def cache_root() -> Path:
    """Folder holding converted GGUF models (``$LEMBENCH_CACHE_DIR/gguf`` if set)."""
    base = os.environ.get("LEMBENCH_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "lembench"
    return root / "gguf"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path, root: Path | None = None) -> str:
    """SHA-256 of ``path``, memoised under the cache root by (path, size, mtime).

    Hashing a multi-GB GGUF takes seconds; the memo makes repeated loads of an unchanged file free.
    A memo that cannot be read or written is ignored (the hash is then computed each time).
    """
    stat = path.stat()
    ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = (root or cache_root()) / ".sha256" / hashlib.sha256(ident.encode()).hexdigest()[:32]
    try:
        cached = memo.read_text().strip()
        if len(cached) == 64:
            return cached
    except OSError:
        pass
    digest = sha256_file(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, memo)  # atomic: readers see the whole hash or none
    except OSError:
        pass
    return digest


def cache_key(sha256: str, transformers_version: str, gguf_version: str | None) -> str:
    """Entry name: the file's hash and the versions of the libraries that dequantise it."""
    safe = [
        v.replace("/", "_").replace(os.sep, "_")
        for v in (transformers_version, gguf_version or "na")
    ]
    return f"{sha256[:16]}-tf{safe[0]}-gguf{safe[1]}"


def lookup(key: str, root: Path | None = None) -> Path | None:
    """The complete cache entry ``key``, or None."""
    entry = (root or cache_root()) / key
    return entry if (entry / MARKER).is_file() else None


def publish(
    key: str,
    write: Callable[[Path], None],
    meta: dict[str, Any],
    root: Path | None = None,
) -> Path:
    """Create entry ``key`` by calling ``write(tmp_dir)``, then renaming it into place atomically.

    If another process published the same key meanwhile, its entry is kept and ours discarded.
    Returns the entry's path. Errors from ``write`` propagate after the temporary folder is removed.
    """
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a shared cache must be readable by all
    try:
        write(tmp)
        for item in tmp.rglob("*"):  # safetensors writes 0600 files; containers may run as others
            item.chmod(0o755 if item.is_dir() else 0o644)
        marker = {**meta, "key": key, "created_unix": time.time()}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True))
        # Atomic on one filesystem; fails when another writer's complete entry is already there.
        try:
            os.rename(tmp, final)
        except OSError:
            if lookup(key, root) is None:
                # A stale incomplete entry (no marker) blocks the name: replace it.
                shutil.rmtree(final, ignore_errors=True)
                try:
                    os.rename(tmp, final)
                except OSError:
                    if lookup(key, root) is None:  # nobody else completed it either
                        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def converted_source(gguf: Path, transformers: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Where to load a GGUF model from: ``(source, from_pretrained extra kwargs, provenance)``.

    Converts ``gguf`` into the cache on first use (fp32, the dequantised values exactly) and
    returns the cache entry; a cache that cannot be written falls back to the GGUF file itself
    (converted again on every load). ``transformers`` is the imported module, passed in so this
    module stays importable without it.
    """
    t0 = time.perf_counter()
    sha = file_sha256(gguf)
    versions = {"transformers": transformers.__version__, "gguf": _dist_version("gguf")}
    key = cache_key(sha, versions["transformers"], versions["gguf"])
    info: dict[str, Any] = {"file": str(gguf), "gguf_sha256": sha, "cache_key": key}
    entry = lookup(key)
    if entry is not None:
        info.update(
            cache_used=True, cache_path=str(entry), hash_s=round(time.perf_counter() - t0, 3)
        )
        return str(entry), {}, info

    direct = {"gguf_file": gguf.name}

    def write(tmp: Path) -> None:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), **direct, dtype="float32"
        )
        # Dequantised weights are plain float tensors, but the GGUF "quantizer" stays attached and
        # makes save_pretrained refuse; detached, the model saves (and reloads) as a plain one.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        del model
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), **direct)
        tokenizer.save_pretrained(tmp)

    try:
        entry = publish(key, write, {"file": str(gguf), "sha256": sha, **versions})
    except OSError as exc:
        info.update(cache_used=False, cache_path=None, cache_error=f"{type(exc).__name__}: {exc}")
        return str(gguf.parent), direct, info
    info.update(
        cache_used=False, cache_path=str(entry), conversion_s=round(time.perf_counter() - t0, 3)
    )
    return str(entry), {}, info


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
