"""lembench's container images: their names and tags, which backend each serves, their labels and
their build context. Standard library only (``.ci/podman.sh`` runs it with the system python3):

    python3 -m lembench.imagedefs source-digest cpu     # the dev.lembench.source label to expect
    python3 -m lembench.imagedefs base cpu              # the Dockerfile's default BASE_IMAGE

Images are tagged ``lembench/<name>:<harness version>``; each records OCI labels (the harness
version, the backend, the base image) that the docker runtime checks before running one. Which
images exist and which backend each serves comes from the backends' descriptions (``image``,
``cpu_image``); an image's folder images/<name>/ holds its Dockerfile.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import __version__
from harness.contract.registry import UnknownNameError, describe, descriptions

REPOSITORY = "lembench"
LABEL_VERSION = "org.opencontainers.image.version"
LABEL_BACKEND = "dev.lembench.backend"
LABEL_BASE = "dev.lembench.base"
LABEL_IMAGE = "dev.lembench.image"
LABEL_SOURCE = "dev.lembench.source"

#: The sources that decide what an image does, besides images/<name>/: the harness, its schemas
#: and the dependency list. (The build context also holds lembench/ and README.md, which the
#: package build needs; the controller's code in an image is never run, so it is not part of the
#: digest, and an image does not go stale when only the controller changes.)
CONTEXT_PATHS = ("pyproject.toml", "harness", "schemas")
CONTEXT_FILES = ("images/requirements.py", "images/harness-tail.sh")


@dataclass(frozen=True)
class ImageDef:
    """One image under images/<name>/."""

    name: str
    backend: str  # the harness backend it serves (dev.lembench.backend)
    gpu: bool  # needs an NVIDIA GPU to be useful: some backend's `image` (not only a cpu_image)


def _images() -> dict[str, ImageDef]:
    """Every image a backend description names: CPU-only images first, then by name."""
    gpu_images = {d.image for d in descriptions() if d.image}
    found: dict[str, ImageDef] = {}
    for description in descriptions():
        for name in (description.image, description.cpu_image):
            if name and name not in found:
                found[name] = ImageDef(name, description.name, name in gpu_images)
    return {name: found[name] for name in sorted(found, key=lambda n: (found[n].gpu, n))}


IMAGES: dict[str, ImageDef] = _images()


def image_ref(name: str, version: str = __version__) -> str:
    """``lembench/<name>:<version>``."""
    return f"{REPOSITORY}/{name}:{version}"


def image_for_backend(backend: str, gpu: bool) -> str | None:
    """The image (name) that runs ``backend`` on a host with (``gpu``) or without NVIDIA GPUs;
    None for a backend no image serves."""
    try:
        description = describe(backend)  # also the spellings users write (llama.cpp, trtllm)
    except UnknownNameError:
        return None
    return description.image if gpu else description.cpu_image


def fitting_images(gpu: bool) -> list[str]:
    """The images worth building on a host: cpu everywhere, the GPU images where NVIDIA GPUs are."""
    return [name for name, image in IMAGES.items() if gpu or not image.gpu]


def host_has_nvidia_gpu() -> bool:
    """Whether this host has an NVIDIA GPU (the harness's GPU device layer, else the driver's
    /proc entries). No torch."""
    from harness.contract import check_gpus

    try:
        found = check_gpus()
        if found["available"] and found["vendor"] == "nvidia":
            return True
    except Exception:  # a broken driver install must not stop image selection
        pass
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return gpus.is_dir() and any(gpus.iterdir())
    except OSError:
        return False


def source_root() -> Path | None:
    """The lembench source checkout images are built from (``$LEMBENCH_SOURCE_DIR``, else the one
    this module lives in), or None when lembench was installed without its sources."""
    env = os.environ.get("LEMBENCH_SOURCE_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1])
    for root in candidates:
        if (root / "images").is_dir() and (root / "pyproject.toml").is_file():
            return root.resolve()
    return None


def dockerfile(root: Path, name: str) -> Path:
    return root / "images" / name / "Dockerfile"


def default_base(root: Path, name: str) -> str | None:
    """The ``ARG BASE_IMAGE=...`` default of an image's Dockerfile."""
    m = re.search(r"^ARG\s+BASE_IMAGE=(\S+)", dockerfile(root, name).read_text(), re.M)
    return m.group(1) if m else None


def _wanted(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")


def context_files(root: Path, name: str) -> list[Path]:
    """The source files that decide what image ``name`` does (relative, sorted)."""
    files: set[Path] = set()
    for entry in (*CONTEXT_PATHS, f"images/{name}"):
        path = root / entry
        if path.is_file():
            files.add(path)
        elif path.is_dir():
            files.update(p for p in path.rglob("*") if p.is_file() and _wanted(p))
    files.update(root / f for f in CONTEXT_FILES if (root / f).is_file())
    return sorted(p.relative_to(root) for p in files)


def source_digest(root: Path, name: str) -> str:
    """A short digest of ``name``'s source files (paths and contents): the dev.lembench.source
    label, so an image whose harness differs from this checkout's shows as stale."""
    digest = hashlib.sha256()
    for rel in context_files(root, name):
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return digest.hexdigest()[:20]


def _main(argv: list[str]) -> int:
    usage = "usage: python -m lembench.imagedefs {source-digest,base} NAME"
    if len(argv) != 2 or argv[0] not in ("source-digest", "base") or argv[1] not in IMAGES:
        print(usage, file=sys.stderr)
        return 2
    root = source_root()
    if root is None:
        print("no lembench source checkout found", file=sys.stderr)
        return 2
    if argv[0] == "source-digest":
        print(source_digest(root, argv[1]))
    else:
        print(default_base(root, argv[1]) or "")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
