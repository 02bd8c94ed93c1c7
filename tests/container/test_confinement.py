"""Each confinement of a harness container, checked from inside a real container of the real
`cpu` image started by the docker runtime (lembench.runtimes.confine): the runtime's own launch,
with the harness command replaced by a probe that reports what the process can see and do."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lembench.runtimes.confine import PIDS_LIMIT
from lembench.runtimes.docker import DockerRuntime

PROBE = r"""
import json, os
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return line.split()[1]
def writable(folder):
    try:
        path = os.path.join(folder, '.probe')
        open(path, 'w').close()
        os.unlink(path)
        return True
    except OSError:
        return False
report = {
    'uid': os.getuid(), 'gid': os.getgid(),
    'cap_eff': status('CapEff'), 'no_new_privs': status('NoNewPrivs'),
    'root_writable': writable('/usr'), 'tmp_writable': writable('/tmp'),
    'home_writable': writable(os.environ['HOME']),
    'interfaces': sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]),
    'mounts': [l.split()[4] for l in open('/proc/self/mountinfo')],
    'cache_writable': {p: writable(p) for p in os.environ['PROBE_CACHE'].split(':') if p},
}
json.dump(report, open('probe.json', 'w'))
"""


class _ProbeClient:
    """The real SDK client, except that containers run the probe instead of the harness."""

    def __init__(self, real: Any, cache_parts: list[str]) -> None:
        self._real = real
        self._cache_parts = cache_parts
        self.started: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @property
    def containers(self) -> _ProbeClient:
        return self

    def run(self, **kwargs: Any) -> Any:
        kwargs["entrypoint"] = ["python3", "-c", PROBE]
        kwargs["command"] = []
        kwargs["environment"] = {
            **kwargs["environment"],
            "PROBE_CACHE": ":".join(self._cache_parts),
        }
        self.started = self._real.containers.run(**kwargs)
        self.started.reload()
        return self.started


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, client) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("confine")
    home = root / "home" / "alice"  # the suite lives in a home folder with private files
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("private key")
    (home / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    cache = root / "cache"
    io_dir = root / "results" / ".work" / "inv" / "g-c1"
    io_dir.mkdir(parents=True)
    request = {
        "suite": "confine",
        "model": {"kind": "alias", "ref": "smollm2-135m", "tokenizer": None},
        "base_dir": str(home),
        "measurement": {"idle_baseline_s": 2, "baseline_cache_s": 600},
        "experiments": [
            {
                "experiment_id": "e1",
                "run_id": "r1",
                "config": {
                    "backend": "pytorch",
                    "workload": {"kind": "jsonl", "path": "prompts.jsonl"},
                },
            }
        ],
    }
    (io_dir / "request.json").write_text(json.dumps(request))
    environ = {**os.environ, "LEMBENCH_CACHE_DIR": str(cache)}
    parts = ["/lembench/cache/gguf", "/lembench/cache/baselines"]  # where they are inside
    fake = _ProbeClient(client, parts)
    runtime = DockerRuntime({"gpus": "none"}, client=fake, environ=environ, host_gpu=False)
    outcome = runtime.launch(io_dir, 120)
    assert outcome.returncode == 0, outcome.log_path.read_text()
    report = json.loads((io_dir / "probe.json").read_text())
    report["host_config"] = fake.started.attrs["HostConfig"]
    report["paths"] = {"home": str(home), "io": str(io_dir), "cache": str(cache)}
    return report


def test_never_root(probe) -> None:
    assert probe["uid"] != 0 and probe["gid"] != 0
    if os.getuid() != 0:
        assert probe["uid"] == os.getuid()


def test_no_capabilities_and_no_new_privileges(probe) -> None:
    assert int(probe["cap_eff"], 16) == 0
    assert probe["no_new_privs"] == "1"


def test_read_only_root_with_writable_tmp_and_home(probe) -> None:
    assert probe["root_writable"] is False
    assert probe["tmp_writable"] is True and probe["home_writable"] is True


def test_no_network(probe) -> None:
    assert probe["interfaces"] == ["lo"]
    assert probe["host_config"]["NetworkMode"] == "none"


def test_pids_and_memory_limits(probe) -> None:
    assert probe["host_config"]["PidsLimit"] == PIDS_LIMIT
    assert probe["host_config"]["Memory"] > 0


def test_only_the_named_files_are_mounted(probe) -> None:
    paths, mounts = probe["paths"], probe["mounts"]
    assert paths["io"] in mounts
    assert str(Path(paths["home"]) / "prompts.jsonl") in mounts
    assert paths["home"] not in mounts
    assert not [m for m in mounts if m.startswith(paths["home"] + "/.ssh")]
    assert paths["cache"] not in mounts  # only its parts: converted models, baselines
    assert probe["cache_writable"] == {
        "/lembench/cache/gguf": True,  # pytorch converts GGUF
        "/lembench/cache/baselines": True,
    }
