"""Container overhead, as ratios measured in one run: the reduced quickstart (1 cycle, 4 prompts,
batch sizes 1 and 4) through the docker runtime and through the local runtime, interleaved over
rounds so machine drift hits both alike. Needs an engine and the `cpu` image (.ci/podman.sh).

- docker/local throughput per batch size (goal >= 0.95: the container and the controller's
  following of it must not slow the measured work down; a controller that polled podman with
  short `wait` calls once made it 0.2);
- wall time of a whole launch, docker/local (container start-up is paid once per load group).

    .venv/bin/python benchmarks/docker_overhead.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _suite(folder: Path) -> Path:
    suite = yaml.safe_load((ROOT / "suites" / "quickstart.yaml").read_text())
    suite.update(name="docker-overhead", cycles=1)
    suite["experiment"]["workload"]["num_prompts"] = 4
    suite.setdefault("measurement", {})["idle_baseline_s"] = 2
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _run(suite: Path, runtime: str, results: Path) -> tuple[float, dict[int, float]]:
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lembench",
            "run",
            str(suite),
            "--runtime",
            runtime,
            "--results-dir",
            str(results),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{runtime} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    throughput = {}
    for path in (results / "docker-overhead").glob("*/*/result.json"):
        r = json.loads(path.read_text())
        throughput[r["config"]["batch_size"]] = r["metrics"]["throughput_out_tok_s"]
    return wall, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"docker": [], "local": []}
    tps: dict[str, dict[int, list[float]]] = {"docker": {}, "local": {}}
    with tempfile.TemporaryDirectory() as tmp:
        suite = _suite(Path(tmp))
        for n in range(args.rounds):
            for runtime in ("docker", "local") if n % 2 == 0 else ("local", "docker"):
                wall, throughput = _run(suite, runtime, Path(tmp) / f"{runtime}-{n}")
                walls[runtime].append(wall)
                for batch, value in throughput.items():
                    tps[runtime].setdefault(batch, []).append(value)
    for batch in sorted(tps["local"]):
        d, lo = statistics.median(tps["docker"][batch]), statistics.median(tps["local"][batch])
        print(f"batch {batch}: docker {d:.1f} tok/s, local {lo:.1f} tok/s, ratio {d / lo:.3f}")
    dw, lw = statistics.median(walls["docker"]), statistics.median(walls["local"])
    print(f"launch wall time: docker {dw:.1f} s, local {lw:.1f} s, ratio {dw / lw:.2f}")


if __name__ == "__main__":
    main()
