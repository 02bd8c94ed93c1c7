"""What every runtime does: run ``python -m harness run <io>/request.json`` somewhere, with a
timeout, its output saved as a log in the io folder."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOG_FILE = "harness.log"

#: Environment variables a harness process may see. Everything else of the controller's environment
#: stays behind, so results do not depend on stray settings and secrets do not leak.
ENV_ALLOWLIST = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TMPDIR",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "TORCH_HOME",
        "XDG_CACHE_HOME",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        "NVIDIA_VISIBLE_DEVICES",
        "PYTORCH_CUDA_ALLOC_CONF",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "VIRTUAL_ENV",
        "PYTHONPATH",
    }
)
ENV_PREFIXES = ("LEMBENCH_",)
#: Secrets passed by name only: present in the harness's environment, never written anywhere.
ENV_SECRETS = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})
#: Set for every harness process: unbuffered logs, no telemetry, quiet tokenizers.
ENV_FIXED = {
    "PYTHONUNBUFFERED": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",  # progress bars of libraries (GGUF conversion) are noise in a log
}


#: Seconds without a controller heartbeat after which a harness ends itself (harness.contract
#: lifeline): long enough for any pause of a busy controller, short enough that a ``--resume`` right
#: after a crash rarely meets the old harness still measuring.
LIFELINE_S = 30.0


def lifeline_environment(parent_pid: int | None = None) -> dict[str, str]:
    """Variables telling the harness how to watch its controller (``parent_pid``: when the
    controller is the harness's parent process, as in the local runtime)."""
    env = {"LEMBENCH_LIFELINE_S": f"{LIFELINE_S:g}"}
    if parent_pid is not None:
        env["LEMBENCH_CONTROLLER_PID"] = str(parent_pid)
    return env


def requested_secrets(io_dir: Path) -> frozenset[str]:
    """Names of the environment variables the request's experiments name as secrets
    (``openai.api_key_env``): passed through by name, like ENV_SECRETS."""
    try:
        request = json.loads((io_dir / "request.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    names = set()
    for exp in request.get("experiments") or []:
        name = ((exp.get("config") or {}).get("openai") or {}).get("api_key_env")
        if isinstance(name, str):
            names.add(name)
    return frozenset(names)


def harness_environment(
    source: dict[str, str] | None = None, secrets: frozenset[str] = frozenset()
) -> dict[str, str]:
    """The environment of a harness process: the allowlisted part of ``source`` (default: ours),
    plus the secrets named by the request (``secrets``)."""
    source = dict(os.environ if source is None else source)
    env = {
        k: v
        for k, v in source.items()
        if k in ENV_ALLOWLIST or k in ENV_SECRETS or k in secrets or k.startswith(ENV_PREFIXES)
    }
    env.update(ENV_FIXED)
    # The controller's own lifeline settings are set by each runtime, never inherited.
    env.pop("LEMBENCH_CONTROLLER_PID", None)
    env.pop("LEMBENCH_LIFELINE_S", None)
    # NVML numbers GPUs in PCI bus order; make CUDA agree so CUDA_VISIBLE_DEVICES indices name the
    # same devices for the engine and the meter (unless the user chose an order).
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env


@dataclass(frozen=True)
class LaunchOutcome:
    """How a harness process ended."""

    returncode: int | None  # None: it never started; negative: killed by that signal
    timed_out: bool
    duration_s: float
    log_path: Path


class Runtime(ABC):
    """Launches harness processes."""

    name: str = ""

    @abstractmethod
    def launch(
        self, io_dir: Path, timeout_s: float, on_poll: Callable[[], None] | None = None
    ) -> LaunchOutcome:
        """Run the harness on ``io_dir/request.json`` and wait for it (at most ``timeout_s``),
        calling ``on_poll`` now and then so the caller can show progress."""
