"""``lembench doctor``: what this machine can run and measure, with one actionable line for each
missing piece: the container engine, GPUs on the host and inside a container, GPU libraries
(NVML, AMD SMI), RAPL, codecarbon, which meter measures each energy domain and how to enable a
better one, lembench's images, and what each backend needs (local or docker runtime).

Fast where nothing is there (no engine: one failed connect); only runs a container when the host
has NVIDIA GPUs and an image to test them with. Never imports an inference engine (installed
engines are found with importlib.util.find_spec).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from harness import __version__
from harness.contract import check_codecarbon, check_gpus, check_rapl, meter_plan
from harness.contract.registry import descriptions
from harness.contract.results import one_line
from lembench.imagedefs import (
    IMAGES,
    LABEL_SOURCE,
    LABEL_VERSION,
    fitting_images,
    host_has_nvidia_gpu,
    image_for_backend,
    image_ref,
    source_digest,
    source_root,
)

#: Seconds for the GPU-in-a-container test.
CONTAINER_CHECK_TIMEOUT_S = 300
TOOLKIT_HINT = (
    "install the NVIDIA Container Toolkit (Docker: nvidia-ctk runtime configure --runtime=docker; "
    "podman: nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml)"
)


@dataclass
class Item:
    """One finding: ``ok`` True (fine), False (missing: ``fix`` says what to do), None (n/a)."""

    topic: str
    ok: bool | None
    detail: str
    fix: str | None = None


@dataclass
class Findings:
    items: list[Item] = field(default_factory=list)
    engine_url: str | None = None
    engine: Any = None
    host_gpu: bool = False
    images: dict[str, str] = field(default_factory=dict)  # name -> ready|missing|stale|other

    def add(self, topic: str, ok: bool | None, detail: str, fix: str | None = None) -> None:
        self.items.append(Item(topic, ok, detail, fix))


def _engine(f: Findings) -> None:
    from lembench.runtimes.engine import PROBE_TIMEOUT_S, EngineError, connect, is_rootless

    try:
        client, url = connect(timeout=PROBE_TIMEOUT_S)
    except EngineError as exc:
        f.add(
            "engine",
            False,
            str(exc).split(";")[0],
            "install Docker (https://docs.docker.com/engine/install/) or podman and start its "
            "socket (podman: systemctl --user enable --now podman.socket; then export "
            "DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock); the local runtime works "
            "without one",
        )
        return
    f.engine, f.engine_url = client, url
    try:
        version = client.version()
        names = [c.get("Name", "") for c in version.get("Components") or []]
        product = "podman" if any("podman" in n.lower() for n in names) else "docker"
        what = f"{product} {version.get('Version', '?')}"
    except Exception:
        what = "engine"
    mode = "rootless" if is_rootless(client) else "rootful"
    f.add("engine", True, f"{what} ({mode}) at {url}")


def _host(f: Findings) -> None:
    f.host_gpu = host_has_nvidia_gpu()
    gpus = check_gpus()
    if gpus["available"]:
        devs = ", ".join(f"{d['name']} ({d['method']})" for d in gpus["devices"])
        f.add(
            "GPUs (host)",
            True,
            f"{gpus['vendor']} via {gpus['meter']}, driver {gpus.get('driver')}: {devs}",
        )
    elif f.host_gpu:
        f.add(
            "GPUs (host)",
            False,
            gpus["error"],
            "install the NVIDIA driver's NVML library (libnvidia-ml) and nvidia-ml-py",
        )
    else:
        f.add("GPUs (host)", None, f"no GPU here ({gpus['error']}): GPU energy n/a")
    rapl = check_rapl()
    if rapl["readable"]:
        f.add("RAPL", True, f"readable: {', '.join(rapl['domains'])}")
    elif "permission" in (rapl["error"] or ""):
        f.add(
            "RAPL",
            False,
            rapl["error"],
            "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj",
        )
    else:
        f.add(
            "RAPL",
            None,
            f"{rapl['error']}: CPU energy will be estimated (codecarbon), labelled as estimate",
        )
    cc = check_codecarbon()
    if cc["present"]:
        f.add("codecarbon", True, f"{cc['version']} (CPU/RAM estimate, CO2)")
    else:
        f.add("codecarbon", False, "not installed", "pip install 'lembench[energy]'")


def _meters(f: Findings) -> None:
    """Which meter measures each energy domain here (``meters: [auto]``), and how to get a better
    one where a measuring meter's hardware is here but it cannot run."""
    try:
        plan = meter_plan()
    except Exception as exc:  # a broken meter install must not stop the other checks
        f.add("energy", False, f"meter selection failed: {one_line(exc)}")
        return
    for domain, use in plan["used"].items():
        kind = "estimate" if use["estimate"] else "measured"
        f.add(
            f"energy {domain}",
            None if use["estimate"] else True,
            f"{kind} by {use['meter']} ({', '.join(use['methods'])})",
        )
    for hint in plan["hints"]:
        f.add(
            f"energy {'/'.join(hint['domains'])}",
            False,
            f"{hint['meter']} would measure it but cannot run: {hint['why']}",
            hint["enable"],
        )
    if not plan["used"]:
        f.add("energy", None, "no meter can run here: results carry no energy figure")


def _images(f: Findings) -> None:
    from lembench.runtimes.engine import docker_sdk

    if f.engine is None:
        return
    docker = docker_sdk()
    root = source_root()
    wanted = set(fitting_images(f.host_gpu))
    for name in IMAGES:
        ref = image_ref(name)
        try:
            image = f.engine.images.get(ref)
        except docker.errors.NotFound:
            f.images[name] = "missing"
            if name in wanted:
                f.add(f"image {name}", False, f"{ref} not built", f"lembench images build {name}")
            else:
                f.add(f"image {name}", None, f"{ref} not built (needs an NVIDIA GPU host)")
            continue
        except Exception as exc:
            f.images[name] = "missing"
            f.add(f"image {name}", False, f"cannot inspect {ref}: {exc}")
            continue
        labels = image.labels or {}
        if labels.get(LABEL_VERSION) != __version__:
            f.images[name] = "other"
            f.add(
                f"image {name}",
                False,
                f"{ref} carries lembench {labels.get(LABEL_VERSION)}",
                f"lembench images build {name}",
            )
        elif root and labels.get(LABEL_SOURCE) != source_digest(root, name):
            f.images[name] = "stale"
            f.add(
                f"image {name}",
                True,
                f"{ref} present, built from other sources than this checkout",
                f"lembench images build {name} (to include your changes)",
            )
        else:
            f.images[name] = "ready"
            f.add(f"image {name}", True, f"{ref} ready")


def _gpu_in_container(f: Findings) -> None:
    if not f.host_gpu:
        f.add("GPUs in a container", None, "skipped: no NVIDIA GPU on this host")
        return
    if f.engine is None:
        f.add("GPUs in a container", False, "no engine to test with", "see engine above")
        return
    usable = [
        n
        for n in ("pytorch", "vllm", "llamacpp", "tensorrt-llm", "cpu")
        if f.images.get(n) in ("ready", "stale")
    ]
    if not usable:
        f.add(
            "GPUs in a container",
            False,
            "no lembench image to test with",
            "lembench images build pytorch",
        )
        return
    from lembench.runtimes.engine import docker_sdk

    docker = docker_sdk()
    ref = image_ref(usable[0])
    try:
        out = f.engine.containers.run(
            ref,
            ["python3", "-m", "harness", "check", "--quiet"],
            device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])],
            remove=True,
            stdout=True,
            stderr=False,
        )
        report = json.loads(out)
    except Exception as exc:
        f.add("GPUs in a container", False, f"{ref}: {one_line(exc)}", TOOLKIT_HINT)
        return
    # Images built before the GPU device layer report "nvml" instead of "gpus".
    seen = report.get("gpus") or report.get("nvml") or {"devices": [], "error": "no GPU report"}
    devices = seen["devices"]
    if devices:
        names = ", ".join(d["name"] for d in devices)
        f.add("GPUs in a container", True, f"{len(devices)} visible in {ref}: {names}")
    else:
        f.add(
            "GPUs in a container",
            False,
            f"none visible in {ref}: {seen['error']}",
            TOOLKIT_HINT,
        )


def _backends(f: Findings) -> None:
    for description in descriptions():
        backend, modules = description.name, description.imports
        installed = [m for m in modules if importlib.util.find_spec(m) is not None]
        if len(installed) == len(modules):
            local = f"local: ready ({', '.join(modules)} installed)"
            local_ok = True
        else:
            missing = [m for m in modules if m not in installed]
            local = f"local: missing {', '.join(missing)}"
            local_ok = False
        image = image_for_backend(backend, f.host_gpu)
        state = f.images.get(image or "", "missing")
        if image is None:
            docker_part, docker_ok = "docker: no image (it runs with the local runtime)", False
        elif f.engine is None:
            docker_part, docker_ok = "docker: no engine", False
        elif state in ("ready", "stale"):
            docker_part, docker_ok = f"docker: {image_ref(image)} ready", True
        else:
            docker_part, docker_ok = f"docker: {image_ref(image)} {state}", False
        needs_gpu = image is not None and IMAGES[image].gpu
        if not description.tested_on_hardware:
            # Written against the engine's documented API and tested against a fake of it only.
            local += " (not yet run on hardware by lembench)"
        if local_ok or docker_ok:
            f.add(f"backend {backend}", True, f"{local}; {docker_part}")
        elif needs_gpu and not f.host_gpu:
            f.add(f"backend {backend}", None, f"needs an NVIDIA GPU; {local}")
        else:
            fix = (
                f"lembench images build {image}"
                if f.engine is not None and image
                else (
                    description.install
                    or f"pip install {backend} (or use its image with an engine)"
                )
            )
            f.add(f"backend {backend}", False, f"{local}; {docker_part}", fix)


def diagnose() -> Findings:
    """Every check, in order."""
    f = Findings()
    _engine(f)
    _host(f)
    _meters(f)
    _images(f)
    _gpu_in_container(f)
    _backends(f)
    if f.engine is not None:
        f.engine.close()
        f.engine = None
    return f


def _runtime_line(f: Findings) -> str:
    image = image_for_backend("pytorch", f.host_gpu)
    if f.engine_url and f.images.get(image or "") in ("ready", "stale"):
        return f"runtime auto -> docker ({image_ref(image)} on {f.engine_url})"
    if f.engine_url:
        return f"runtime auto -> local (image {image_ref(image)} not built)"
    return "runtime auto -> local (no container engine)"


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor_command(as_json: bool) -> None:
    """Check what this machine can run and measure, and say how to fix what is missing."""
    f = diagnose()
    if as_json:
        click.echo(
            json.dumps(
                {"items": [asdict(i) for i in f.items], "runtime_auto": _runtime_line(f)}, indent=2
            )
        )
        return
    marks = {True: "ok ", False: "NO ", None: " - "}
    width = max(len(i.topic) for i in f.items)
    for item in f.items:
        click.echo(f"  {marks[item.ok]} {item.topic:<{width}}  {item.detail}")
        if item.fix and item.ok is not True:
            click.echo(f"      {'':<{width}}  -> {item.fix}")
        elif item.fix:
            click.echo(f"      {'':<{width}}  (optional) {item.fix}")
    problems = sum(1 for i in f.items if i.ok is False)
    click.echo(
        f"lembench {__version__} doctor: {problems} missing piece{'s' * (problems != 1)}; "
        f"{_runtime_line(f)}"
    )
