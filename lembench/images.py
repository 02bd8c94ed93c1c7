"""``lembench images``: build and list lembench's container images (images/<name>/Dockerfile).

Images are built through the engine's API (the docker SDK: Docker, or podman's socket) from a
source checkout, with the repository root as the build context (.dockerignore keeps it to what
the images install). Each is tagged ``lembench/<name>:<version>`` and labelled with the harness
version, its backend, its base image and a digest of the sources it was built from; an image built
from exactly the current sources is not rebuilt (``--force`` rebuilds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from harness import __version__
from lembench.errors import UserError
from lembench.imagedefs import (
    IMAGES,
    LABEL_BASE,
    LABEL_SOURCE,
    LABEL_VERSION,
    REPOSITORY,
    default_base,
    fitting_images,
    host_has_nvidia_gpu,
    image_ref,
    source_digest,
    source_root,
)

#: Seconds a build may go without output (a long pip or CMake step) before the API call gives up.
BUILD_TIMEOUT_S = 6 * 3600


def _connect() -> tuple[Any, str]:
    from lembench.runtimes.engine import EngineError, connect

    try:
        return connect()
    except EngineError as exc:
        raise UserError(str(exc)) from None


def _check_names(names: tuple[str, ...]) -> list[str]:
    from harness.contract.registry import suggest

    for name in names:
        if name not in IMAGES:
            raise UserError(
                f"unknown image {name!r}{suggest(name, list(IMAGES))} "
                f"(allowed: {', '.join(IMAGES)})"
            )
    return list(dict.fromkeys(names))


def _short(image_id: str | None) -> str:
    return (image_id or "").removeprefix("sha256:")[:12]


def _status(image: Any, source: str | None) -> str:
    labels = image.labels or {}
    if labels.get(LABEL_VERSION) != __version__:
        return f"other version ({labels.get(LABEL_VERSION) or 'unlabelled'}): rebuild"
    if source and labels.get(LABEL_SOURCE) != source:
        return "stale (built from other sources): rebuild"
    return "ready"


def _parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UserError(f"--build-arg {value!r}: expected KEY=VALUE")
        out[key] = val
    return out


def build_image(
    client: Any,
    root: Path,
    name: str,
    *,
    base_image: str | None = None,
    network: str | None = None,
    build_args: dict[str, str] | None = None,
    force: bool = False,
    echo: Any = None,
) -> tuple[Any, bool]:
    """Build ``name`` (unless an image of these sources exists); returns (image, built).

    Without ``base_image``, a rebuild keeps the base the existing image was built on (its
    dev.lembench.base label), else the Dockerfile's default."""
    from lembench.runtimes.engine import docker_sdk, one_line

    docker = docker_sdk()
    tag = image_ref(name)
    source = source_digest(root, name)
    try:
        existing = client.images.get(tag)
    except docker.errors.NotFound:
        existing = None
    labels = (existing.labels or {}) if existing is not None else {}
    if base_image is None and labels.get(LABEL_BASE):
        base_image = labels[LABEL_BASE]
    if (
        existing is not None
        and not force
        and (
            labels.get(LABEL_SOURCE) == source
            and labels.get(LABEL_VERSION) == __version__
            and labels.get(LABEL_BASE) == base_image
        )
    ):
        return existing, False
    if echo is not None:
        echo(f"base image: {base_image or default_base(root, name)}")
    args = {"LEMBENCH_VERSION": __version__, "LEMBENCH_SOURCE": source}
    if base_image:
        args["BASE_IMAGE"] = base_image
    args.update(build_args or {})
    kwargs: dict[str, Any] = {
        "path": str(root),
        "dockerfile": f"images/{name}/Dockerfile",
        "tag": tag,
        "buildargs": args,
        "rm": True,
        "forcerm": True,
        "decode": True,
        "pull": False,
        "timeout": BUILD_TIMEOUT_S,
    }
    if network:
        kwargs["network_mode"] = network
    last_error = None
    try:
        for chunk in client.api.build(**kwargs):
            if "error" in chunk or "errorDetail" in chunk:
                last_error = chunk.get("error") or chunk["errorDetail"].get("message")
            text = chunk.get("stream")
            if text and text.strip() and echo is not None:
                echo(text.rstrip("\n"))
    except docker.errors.DockerException as exc:
        raise UserError(f"building {tag} failed: {one_line(exc)}") from None
    if last_error:
        raise UserError(f"building {tag} failed: {' '.join(str(last_error).split())[:300]}")
    try:
        return client.images.get(tag), True
    except docker.errors.NotFound:
        raise UserError(f"building {tag} reported success but the image is missing") from None


@click.group("images")
def images_group() -> None:
    """Build and list lembench's container images (the docker runtime's)."""


@images_group.command("build")
@click.argument("names", nargs=-1, metavar="[NAMES]...")
@click.option(
    "--base-image",
    help="Base image (the Dockerfile's BASE_IMAGE build argument); one image name only.",
)
@click.option("--force", is_flag=True, help="Rebuild even if an image of these sources exists.")
@click.option(
    "--network", help="Network of the build's RUN steps, e.g. host (podman behind a proxy)."
)
@click.option(
    "--build-arg", "build_args", multiple=True, metavar="KEY=VALUE", help="Extra build argument."
)
@click.option("--quiet", "-q", is_flag=True, help="Do not show the build output.")
def build_command(
    names: tuple[str, ...],
    base_image: str | None,
    force: bool,
    network: str | None,
    build_args: tuple[str, ...],
    quiet: bool,
) -> None:
    """Build images NAMES (default: those that fit this machine: cpu, plus the GPU images where
    NVIDIA GPUs are). Names: see `lembench images list`."""
    chosen = _check_names(names) if names else fitting_images(host_has_nvidia_gpu())
    if base_image and len(chosen) != 1:
        raise UserError("--base-image applies to one image: name exactly one")
    extra = _parse_build_args(build_args)
    root = source_root()
    if root is None:
        raise UserError(
            "building images needs a lembench source checkout (git clone it, or set "
            "LEMBENCH_SOURCE_DIR to one)"
        )
    client, url = _connect()

    def echo(line: str) -> None:
        click.echo(f"  {line}", err=True)

    for name in chosen:
        click.echo(f"building {image_ref(name)} (engine {url})", err=True)
        image, built = build_image(
            client,
            root,
            name,
            base_image=base_image,
            network=network,
            build_args=extra,
            force=force,
            echo=None if quiet else echo,
        )
        state = "built" if built else "up to date (same sources; --force rebuilds)"
        click.echo(f"{image_ref(name)}: {state}, id {_short(image.id)}")


def _normal_tag(tag: str) -> str:
    for prefix in ("localhost/", "docker.io/library/", "docker.io/"):
        if tag.startswith(prefix):
            return tag[len(prefix) :]
    return tag


def image_rows(client: Any, root: Path | None) -> list[dict[str, Any]]:
    """One row per lembench image: this version's tags (present or not), then other tags of the
    lembench repositories that are present."""
    from lembench.runtimes.engine import docker_sdk, image_digest, image_size

    docker = docker_sdk()
    rows = []
    for name in IMAGES:
        ref = image_ref(name)
        row: dict[str, Any] = {"image": ref, "name": name, "present": False}
        try:
            image = client.images.get(ref)
        except docker.errors.NotFound:
            row["status"] = f"missing: lembench images build {name}"
        else:
            source = source_digest(root, name) if root else None
            row.update(
                present=True,
                id=image.id,
                digest=image_digest(image),
                size_bytes=image_size(image),
                version=(image.labels or {}).get(LABEL_VERSION),
                base=(image.labels or {}).get(LABEL_BASE),
                status=_status(image, source),
            )
        rows.append(row)
    current = {image_ref(name) for name in IMAGES}
    try:
        others = client.images.list()
    except Exception:
        others = []
    for image in others:
        for tag in image.tags or []:
            tag = _normal_tag(tag)
            if tag.startswith(f"{REPOSITORY}/") and tag not in current:
                rows.append(
                    {
                        "image": tag,
                        "name": tag.split("/", 1)[1].split(":")[0],
                        "present": True,
                        "id": image.id,
                        "digest": image_digest(image),
                        "size_bytes": image_size(image),
                        "version": (image.labels or {}).get(LABEL_VERSION),
                        "base": (image.labels or {}).get(LABEL_BASE),
                        "status": "other version",
                    }
                )
    return rows


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


@images_group.command("compose")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (e.g. compose.yaml) instead of standard output.",
)
def compose_command(output: str | None) -> None:
    """Print compose.yaml: one service per image, from the backends' descriptions."""
    from lembench.compose import compose_text

    text = compose_text()
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None


@images_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def list_command(as_json: bool) -> None:
    """Show each image: present, digest, size, and whether it fits this lembench version."""
    from rich.console import Console
    from rich.table import Table

    client, url = _connect()
    rows = image_rows(client, source_root())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"lembench images (engine {url})")
    for col in ("image", "present", "digest", "size", "status"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["image"],
            "yes" if row["present"] else "no",
            _short(row.get("digest")) if row["present"] else "-",
            _size(row.get("size_bytes")),
            row["status"],
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
