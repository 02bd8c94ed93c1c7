"""What a suite costs beyond its measured work: the quickstart's wall/work ratio.

wall = the wall time of one ``lembench run suites/quickstart.yaml`` (process start to exit);
work = the sum of its runs' measured windows (``metrics.duration_s`` of every stored result).
The ratio is what a user waits per second of measurement (goal <= 1.10).

    .venv/bin/python benchmarks/quickstart_cost.py [--rounds 3] [--tree DIR ...]

Each ``--tree`` is a checkout whose code runs (PYTHONPATH points at it; default: this checkout);
several trees are measured in interleaved rounds, their order rotated every round, so machine drift
and order effects hit every tree alike: compare trees only within one run. Every run gets a fresh
baseline cache (the first run of a suite within 10 minutes: the idle baseline is measured) but
shares the converted-model and CPU-peak caches (one-offs per host are not the suite's cost). The
machine's load average is printed beside each round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _stats import median_interval

HERE = Path(__file__).resolve().parent.parent


def _cache_root() -> Path:
    base = os.environ.get("LEMBENCH_CACHE_DIR")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "lembench"


def one_run(tree: Path, suite: Path, extra: list[str]) -> tuple[float, float, int]:
    """(wall s, work s, runs stored) of one ``lembench run`` of ``suite`` with ``tree``'s code."""
    with tempfile.TemporaryDirectory(prefix="lembench-qcost-") as tmp:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        for shared in ("gguf", "peaks"):  # once per host: converted models, CPU peak probes
            if (_cache_root() / shared).is_dir():
                (cache / shared).symlink_to(_cache_root() / shared)
        env = {**os.environ, "PYTHONPATH": str(tree), "LEMBENCH_CACHE_DIR": str(cache)}
        results = Path(tmp) / "results"
        cmd = [sys.executable, "-m", "lembench", "run", str(suite), "--results-dir", str(results)]
        start = time.perf_counter()
        proc = subprocess.run(cmd + extra, env=env, cwd=tree, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"lembench run failed in {tree} (exit {proc.returncode})")
        for line in proc.stdout.splitlines():  # lembench's own breakdown, where it prints one
            if line.startswith("wall time "):
                print(f"  {tree.name}: {line}")
        work, runs = 0.0, 0
        for path in results.rglob("result.json"):
            result = json.loads(path.read_text(encoding="utf-8"))
            if result.get("status") == "ok":
                work += result["metrics"]["duration_s"]
                runs += 1
        return wall, work, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=HERE / "suites" / "quickstart.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="run a copy of the suite with pytorch.threads set (0: the suite as it is); the "
        "engine option works on older checkouts too, so trees compare on equal threads",
    )
    parser.add_argument("--tree", type=Path, action="append", help="checkout to run (repeatable)")
    args, extra = parser.parse_known_args()
    trees = [t.resolve() for t in (args.tree or [HERE])]
    suite = args.suite.resolve()
    if args.threads:
        import yaml

        doc = yaml.safe_load(suite.read_text(encoding="utf-8"))
        doc["experiment"].setdefault("pytorch", {})["threads"] = args.threads
        copy = Path(tempfile.mkdtemp(prefix="lembench-qcost-suite-")) / suite.name
        copy.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        suite = copy
        print(f"suite {args.suite.name} with pytorch.threads = {args.threads}")
    print(f"cores: {os.cpu_count()}, allowed by affinity: {len(os.sched_getaffinity(0))}")
    ratios: dict[Path, list[float]] = {t: [] for t in trees}
    walls: dict[Path, list[float]] = {t: [] for t in trees}
    for r in range(args.rounds):
        order = trees[r % len(trees) :] + trees[: r % len(trees)]  # rotate: no tree always first
        for tree in order:
            load = os.getloadavg()[0]
            wall, work, runs = one_run(tree, suite, extra)
            ratios[tree].append(wall / work)
            walls[tree].append(wall)
            print(
                f"round {r + 1} {tree}: wall {wall:7.1f} s  work {work:6.1f} s ({runs} runs)  "
                f"wall/work {wall / work:.3f}  load avg {load:.2f}",
                flush=True,
            )
    for tree in trees:
        med, lo, hi = median_interval(ratios[tree])
        print(
            f"{tree}: quickstart wall/work ratio: median {med:.3f} "
            f"[{lo:.3f}, {hi:.3f}] over {len(ratios[tree])} rounds; wall median "
            f"{statistics.median(walls[tree]):.1f} s; goal <= 1.10"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
