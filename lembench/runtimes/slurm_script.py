"""Rendering the sbatch scripts of the ``slurm`` runtime: one job array per chunk of launches.

A suite invocation becomes as few job arrays as Slurm allows: launches are split only where they
need a different number of GPUs (the ``--gres`` line is per array) and where an array would pass
the cluster's ``MaxArraySize``. Each array task runs one launch (load group x cycle) through
``python -m lembench.runtimes.slurm_task <invocation folder> <offset>``; the task finds its launch
as ``offset + SLURM_ARRAY_TASK_ID``.

sbatch options follow the sbatch manual (https://slurm.schedmd.com/sbatch.html): ``--array``
with a ``%N`` throttle, ``--partition``, ``--account``, ``--qos``, ``--time``,
``--gres=gpu:N``, ``--constraint``, ``--cpus-per-task``, ``--mem``, ``--output`` with the ``%A``
(array job id) and ``%a`` (task index) patterns; ``--no-requeue`` because requeueing is lembench's
decision (``--requeue``), made once per preempted task.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Slurm's default MaxArraySize (https://slurm.schedmd.com/slurm.conf.html#OPT_MaxArraySize):
#: indices 0..1000.
DEFAULT_MAX_ARRAY_SIZE = 1001
INNER_RUNTIMES = ("local", "docker", "pyxis")
SCRIPT_GLOB = "array-*.sbatch"


@dataclass(frozen=True)
class SlurmOptions:
    """The ``slurm:`` block of a suite, with command-line overrides applied."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None  # sbatch --time syntax, e.g. "02:00:00"
    gpus: int | None = None  # GPUs per task; None: from the launch's experiments (TP x PP)
    constraint: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # sbatch --mem syntax, e.g. "16G"
    throttle: int | None = None  # the %N of --array: at most N tasks at once
    extra: tuple[str, ...] = ()  # more "#SBATCH ..." lines (or bare options), as written
    inner: str = "local"  # how the task runs the harness: local, docker (podman) or pyxis
    container_image: str | None = None  # pyxis: the --container-image of srun
    python: str | None = None  # the interpreter with lembench on the node; None: the controller's

    @classmethod
    def from_settings(
        cls, block: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None = None
    ) -> SlurmOptions:
        """Options from a suite's ``slurm`` block and CLI ``overrides`` (None values ignored)."""
        values = {k: v for k, v in dict(block or {}).items() if v is not None}
        values.update({k: v for k, v in dict(overrides or {}).items() if v is not None})
        if "extra" in values:
            values["extra"] = tuple(values["extra"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the invocation manifest."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "extra": list(self.extra)
        }


def gpus_for_experiment(config: Mapping[str, Any]) -> int:
    """GPUs one experiment needs: tensor x pipeline parallel size for the engines that shard a
    model (vLLM, TensorRT-LLM), 1 for an explicit ``device: cuda``, else 0 (``auto`` and ``cpu``;
    a suite that wants GPUs for ``auto`` sets ``slurm.gpus``)."""
    backend = config.get("backend")
    if backend == "vllm":
        opts = config.get("vllm") or {}
        return int(opts.get("tensor_parallel_size") or 1) * int(
            opts.get("pipeline_parallel_size") or 1
        )
    if backend == "tensorrt-llm":
        opts = config.get("tensorrt") or {}
        return int(opts.get("tp_size") or 1) * int(opts.get("pp_size") or 1)
    return 1 if str(config.get("device", "")).startswith("cuda") else 0


def gpus_for_launch(configs: Iterable[Mapping[str, Any]], options: SlurmOptions) -> int:
    """GPUs of one array task: the option when set, else the most any experiment needs."""
    if options.gpus is not None:
        return options.gpus
    return max((gpus_for_experiment(c) for c in configs), default=0)


@dataclass(frozen=True)
class ArrayChunk:
    """Launches ``offset .. offset + size - 1`` of an invocation, submitted as one job array."""

    offset: int
    size: int
    gpus: int


def chunk_launches(gpus: Sequence[int], max_array_size: int) -> list[ArrayChunk]:
    """Consecutive runs of launches with the same GPU count, cut at ``max_array_size`` tasks
    (indices 0..max_array_size-1): as few arrays, and so sbatch calls, as the cluster allows."""
    chunks: list[ArrayChunk] = []
    start = 0
    for i in range(1, len(gpus) + 1):
        if i == len(gpus) or gpus[i] != gpus[start] or i - start == max_array_size:
            chunks.append(ArrayChunk(start, i - start, gpus[start]))
            start = i
    return chunks


@dataclass(frozen=True)
class RenderedScript:
    """One sbatch script and its hash (recorded in every result of its tasks)."""

    chunk: ArrayChunk
    text: str
    name: str = field(init=False)
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", script_name(self.chunk.offset))
        object.__setattr__(self, "sha256", hashlib.sha256(self.text.encode()).hexdigest())


def script_name(offset: int) -> str:
    """File name of the script whose first launch is ``offset``."""
    return f"array-{offset:06d}.sbatch"


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def render_script(
    chunk: ArrayChunk,
    options: SlurmOptions,
    invocation_dir: Path,
    suite_name: str,
    python: str,
    env: Mapping[str, str] | None = None,
) -> RenderedScript:
    """The sbatch script of ``chunk``: #SBATCH lines, then the task command. ``env``: variables
    the task needs that sbatch's default ``--export=ALL`` may not carry when the script is
    submitted by hand (PYTHONPATH of the controller, the podman socket)."""
    array = f"0-{chunk.size - 1}" + (f"%{options.throttle}" if options.throttle else "")
    lines = [
        "#!/bin/bash",
        f"# lembench: suite {suite_name}, launches {chunk.offset}..{chunk.offset + chunk.size - 1}"
        f" of invocation {invocation_dir.name}",
        f"#SBATCH --job-name=lembench-{_SAFE_NAME.sub('_', suite_name)[:40]}",
        f"#SBATCH --array={array}",
        f"#SBATCH --output={invocation_dir}/tasks/slurm-%A_%a.out",
        "#SBATCH --ntasks=1",
        "#SBATCH --no-requeue",
    ]
    for flag, value in (
        ("partition", options.partition),
        ("account", options.account),
        ("qos", options.qos),
        ("time", options.time),
        ("constraint", options.constraint),
        ("cpus-per-task", options.cpus_per_task),
        ("mem", options.mem),
    ):
        if value is not None:
            lines.append(f"#SBATCH --{flag}={value}")
    if chunk.gpus:
        lines.append(f"#SBATCH --gres=gpu:{chunk.gpus}")
    for line in options.extra:
        line = line.strip()
        lines.append(line if line.startswith("#SBATCH") else f"#SBATCH {line}")
    lines.append("set -eu")
    for name, value in sorted((env or {}).items()):
        lines.append(f"export {name}={shlex.quote(value)}")
    lines.append(
        f"exec {shlex.quote(python)} -m lembench.runtimes.slurm_task "
        f"{shlex.quote(str(invocation_dir))} {chunk.offset}"
    )
    return RenderedScript(chunk, "\n".join(lines) + "\n")
