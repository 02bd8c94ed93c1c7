"""GPU validation in one command: evidence that lembench measures right on a GPU, in one archive.

    python benchmarks/gpu_validation.py [--out DIR] [--budget-s 480]   # on a GPU machine
    python benchmarks/gpu_validation.py --dry-run [--out DIR]          # anywhere: CPU + fake NVML

Steps, each bounded by what is left of the budget (a step that does not fit is recorded as skipped
with the reason, never silently dropped):

1. ``pytest -m gpu tests/gpu``: the real-NVML tests.
2. Meter validation (suites/reference/meter-validation.yaml): one >= 30 s loaded window, twice,
   with fresh idle baselines. From the stored results: the NVML energy counter vs its integrated
   10 Hz power timeline (goal within 3%; the timeline's power is what NVML reports, on Ampere and
   later a ~1 s moving average, so the integral lags the counter at the window's edges), the idle
   baseline of the two cycles (goal within 5%), and phase closure (prefill + decode + other + idle
   vs the counter total, goal within 1%).
3. Harness overhead: benchmarks/overhead.py with Llama-3.1-8B dummy bf16 at batch 1 and 16
   (goal >= 0.99).
4. The reference sweep (suites/reference/pytorch-dummy-sweep.yaml).
5. ``lembench reproduce --compare-only`` for the studies stored results can answer, and the
   reproductions whose suites fit the time left, run with ``--dummy-weights``.
6. Everything packed into ``<out>.tar.gz``: result files exactly as the harness wrote them,
   timelines, logs, each step's output, the environment (GPU, driver, CUDA, torch, transformers) and
   ``validation.json`` with every figure and goal.

It needs what a bare GPU box has (Python with torch, transformers, nvidia-ml-py) plus lembench's
light dependencies; benchmarks/gpu_wheels.sh downloads those as wheels for a machine without a
network.
The report is built afterwards, on any machine: ``lembench report <out>/results --out site/``.

``--dry-run`` walks every step on the CPU: SmolLM2-135M instead of the dummy Llama models, a few
tokens, and a fake ``pynvml`` (tests/fakes/fake_pynvml.py) whose simulated GPU draws a steady power,
so the whole script is known to work before it meets a GPU. Its numbers are the fake's, and the
summary says so.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "suites" / "reference"
#: Studies whose claims a pytorch run on one GPU can speak to, in the order they are attempted.
STUDIES = ("ecocompute-batch-sweep", "ecocompute-int8-paradox", "ecocompute-nf4")
GOALS = {"counter_vs_power": 0.03, "baseline_repeat": 0.05, "closure": 0.01, "overhead": 0.99}


@dataclass
class Step:
    """One step's outcome, as stored in validation.json."""

    name: str
    status: str = "pending"  # ok | failed | skipped
    seconds: float = 0.0
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget:
    """Wall-clock budget of the whole script; each step gets at most what is left."""

    total_s: float
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.total_s - (time.monotonic() - self.start)


class Validation:
    """Runs the steps into one output folder."""

    def __init__(self, out: Path, budget: Budget, dry_run: bool) -> None:
        self.out, self.budget, self.dry_run = out, budget, dry_run
        self.results = out / "results"
        self.logs = out / "logs"
        self.steps: list[Step] = []
        self.env = dict(os.environ)
        path = [str(ROOT)]
        if dry_run:
            shim = out / "fake-nvml"
            write_fake_nvml(shim)
            path.insert(0, str(shim))
        self.env["PYTHONPATH"] = os.pathsep.join([*path, self.env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        self.env["PYTHONUNBUFFERED"] = "1"

    # -- running things ---------------------------------------------------------------------

    def sh(self, name: str, args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
        """Run ``args`` with its output in logs/<name>.log; raise on a timeout."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("a", encoding="utf-8") as f:
            f.write(f"$ {' '.join(args)}\n")
            f.flush()
            return subprocess.run(
                args,
                cwd=ROOT,
                env=self.env,
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=max(1.0, timeout_s),
                check=False,
            )

    def lembench(self, name: str, args: list[str], timeout_s: float) -> int:
        return self.sh(name, [sys.executable, "-m", "lembench", *args], timeout_s).returncode

    def step(self, name: str, need_s: float, fn: Any) -> Step:
        """Run ``fn(step, time_left)`` if at least ``need_s`` seconds are left."""
        step = Step(name)
        self.steps.append(step)
        left = self.budget.left()
        if left < need_s:
            step.status, step.reason = (
                "skipped",
                f"out of budget ({left:.0f} s left, {need_s} needed)",
            )
            print(f"[{name}] skipped: {step.reason}", flush=True)
            return step
        print(f"[{name}] running ({left:.0f} s left)", flush=True)
        start = time.monotonic()
        try:
            fn(step, left)
            if step.status == "pending":
                step.status = "ok"
        except subprocess.TimeoutExpired as exc:
            step.status, step.reason = "failed", f"timed out after {exc.timeout:.0f} s"
        except Exception as exc:  # one step's failure is recorded; the others still run
            step.status, step.reason = "failed", f"{type(exc).__name__}: {exc}"
        step.seconds = round(time.monotonic() - start, 1)
        print(f"[{name}] {step.status} in {step.seconds} s {step.reason or ''}", flush=True)
        return step

    def suite(self, name: str) -> Path:
        """The suite file to run: the committed one, or its CPU-sized twin for --dry-run."""
        src = SUITES / f"{name}.yaml"
        if not self.dry_run:
            return src
        doc = yaml.safe_load(src.read_text(encoding="utf-8"))
        dry = shrink_for_cpu(doc)
        dst = self.out / "suites" / f"{name}.yaml"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(yaml.safe_dump(dry, sort_keys=False), encoding="utf-8")
        return dst

    # -- the steps ----------------------------------------------------------------------------

    def gpu_tests(self, step: Step, left: float) -> None:
        xml = self.out / "gpu-tests.xml"
        proc = self.sh(
            "gpu-tests",
            [
                sys.executable,
                "-m",
                "pytest",
                "-m",
                "gpu",
                "tests/gpu",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={xml}",
            ],
            min(left, 180),
        )
        step.figures = junit_counts(xml)
        # 5: every test skipped or none collected (no GPU): recorded, not a failure of the script.
        if proc.returncode not in (0, 5) and step.figures.get("failures", 0) + step.figures.get(
            "errors", 0
        ):
            step.status, step.reason = "failed", f"pytest exit {proc.returncode}"

    def meter_validation(self, step: Step, left: float) -> None:
        suite = self.suite("meter-validation")
        rc = self.lembench(
            "meter-validation",
            ["run", str(suite), "--results-dir", str(self.results), "--runtime", "local"],
            min(left, 240),
        )
        runs = stored_runs(self.results, "gpu-meter-validation")
        step.figures = meter_figures(runs)
        step.figures["lembench_exit"] = rc
        if rc != 0 or not runs:
            step.status, step.reason = "failed", f"lembench run exit {rc}, {len(runs)} runs stored"

    def overhead(self, step: Step, left: float) -> None:
        figures: dict[str, Any] = {}
        if self.dry_run:
            cases = [("smollm2-135m", "fp32", 1), ("smollm2-135m", "fp32", 2)]
            extra = [
                "--input-tokens",
                "8",
                "--output-tokens",
                "8",
                "--rounds",
                "2",
                "--batches",
                "1",
            ]
        else:
            cases = [
                ("meta-llama/Llama-3.1-8B", "bf16", 1),
                ("meta-llama/Llama-3.1-8B", "bf16", 16),
            ]
            extra = [
                "--weights",
                "dummy",
                "--device",
                "cuda",
                "--input-tokens",
                "256",
                "--output-tokens",
                "256",
                "--rounds",
                "3",
            ]
        for model, precision, batch in cases:
            name = f"overhead-b{batch}"
            proc = self.sh(
                name,
                [
                    sys.executable,
                    "benchmarks/overhead.py",
                    "--model",
                    model,
                    "--precision",
                    precision,
                    "--batch-size",
                    str(batch),
                    *extra,
                ],
                min(self.budget.left(), 200),
            )
            ratio = overhead_ratio((self.logs / f"{name}.log").read_text(encoding="utf-8"))
            figures[f"batch_{batch}"] = {"exit": proc.returncode, "harness_bare_ratio": ratio}
        step.figures = figures
        if any(v["harness_bare_ratio"] is None for v in figures.values()):
            step.status, step.reason = "failed", "overhead.py printed no ratio (see logs/)"

    def sweep(self, step: Step, left: float) -> None:
        suite = self.suite("pytorch-dummy-sweep")
        # Keep a reserve for the steps after it; the harness records what did not finish.
        rc = self.lembench(
            "sweep",
            ["run", str(suite), "--results-dir", str(self.results), "--runtime", "local"],
            max(30.0, left - 45),
        )
        runs = stored_runs(self.results, "reference-pytorch-dummy")
        step.figures = {
            "lembench_exit": rc,
            "runs": len(runs),
            "ok": sum(r.get("status") == "ok" for r in runs),
            "j_per_output_token": sweep_table(runs),
        }

    def reproduce(self, step: Step, left: float) -> None:
        """Run each study's own suite (dummy weights) while time is left, then compare what is
        stored: a study cut short by the budget is compared on the runs it finished."""
        out: dict[str, Any] = {}
        for study in STUDIES:
            common = ["--dummy-weights", "--results-dir", str(self.results), "--runtime", "local"]
            entry: dict[str, Any] = {}
            room = self.budget.left() - 20
            if room >= (5 if self.dry_run else 60):
                try:
                    entry["run_exit"] = self.lembench(
                        f"reproduce-{study}", ["reproduce", study, "--resume", *common], room
                    )
                except subprocess.TimeoutExpired:
                    entry["run_exit"] = "stopped at the budget; finished runs are stored"
            else:
                entry["run_exit"] = "not run: out of budget"
            entry["compare_exit"] = self.lembench(
                f"reproduce-{study}", ["reproduce", study, "--compare-only", *common], 60
            )
            out[study] = entry
        step.figures = out

    # -- output --------------------------------------------------------------------------------

    def finish(self) -> Path:
        summary = {
            "script": "benchmarks/gpu_validation.py",
            "dry_run": self.dry_run,
            "note": (
                "dry run: CPU and a fake NVML; every energy figure here is the fake's, not a "
                "measurement"
                if self.dry_run
                else "measured on the machine in environment.json"
            ),
            "goals": GOALS,
            "budget_s": self.budget.total_s,
            "elapsed_s": round(time.monotonic() - self.budget.start, 1),
            "steps": [asdict(s) for s in self.steps],
        }
        (self.out / "validation.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        (self.out / "environment.json").write_text(
            json.dumps(environment(self.env), indent=2), encoding="utf-8"
        )
        archive = self.out.with_name(self.out.name + ".tar.gz")
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(self.out, arcname=self.out.name, filter=_skip_cache)
        return archive


def _skip_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Leave the dry run's fake NVML shim out of the archive."""
    parts = Path(info.name).parts
    return None if len(parts) > 1 and parts[1] == "fake-nvml" else info


# -- pure functions (tested without a GPU) ------------------------------------------------------


def shrink_for_cpu(doc: dict[str, Any]) -> dict[str, Any]:
    """A suite document resized for a CPU dry run: SmolLM2 (shipped in a PyPI package) at fp32 on
    the CPU, a few tokens, one cycle, bitsandbytes experiments dropped (CUDA only)."""
    doc = json.loads(json.dumps(doc))  # deep copy
    doc["name"] = doc["name"]
    doc["cycles"] = min(int(doc.get("cycles", 1)) if isinstance(doc.get("cycles"), int) else 2, 2)
    measurement = doc.setdefault("measurement", {})
    measurement["idle_baseline_s"] = 1
    exp = doc.setdefault("experiment", {})
    exp.update({"model": "smollm2-135m", "precision": "fp32", "device": "cpu"})
    exp.pop("weights", None)
    exp["workload"] = {**exp.get("workload", {}), "input_tokens": 8, "output_tokens": 8}
    if "num_prompts" in exp["workload"]:
        exp["workload"]["num_prompts"] = 4
    if "batch_size" in exp:
        exp["batch_size"] = 2
    kept = []
    for item in doc.get("experiments", []):
        if "quantization" in (item.get("pytorch") or {}):
            continue
        item = {k: v for k, v in item.items() if k not in ("model", "precision")}
        item["batch_size"] = min(int(item.get("batch_size", 1)), 2)
        item["workload"] = {"num_prompts": item["batch_size"]}
        if item not in kept:
            kept.append(item)
    if kept:
        doc["experiments"] = kept
    return doc


def stored_runs(results: Path, suite: str) -> list[dict[str, Any]]:
    """Result documents of ``suite`` in a results folder, each with its folder as ``_dir``."""
    runs = []
    for path in sorted((results / suite).glob("*/*/result.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict):
            doc["_dir"] = str(path.parent)
            runs.append(doc)
    return runs


def gpu_counter_j(result: dict[str, Any]) -> float | None:
    """GPU energy of a result measured with the NVML energy counter, else None."""
    components = (result.get("energy") or {}).get("components") or []
    values = [
        c["energy_j"]
        for c in components
        if c.get("domain") == "gpu"
        and c.get("method") == "nvml_counter"
        and isinstance(c.get("energy_j"), (int, float))
    ]
    return sum(values) if values else None


def integrated_power_j(samples: list[dict[str, Any]]) -> float | None:
    """Trapezoid integral over the timeline of the summed power of every GPU sampled."""
    points = []
    for s in samples:
        gpus = s.get("gpus") or []
        powers = [g.get("power_w") for g in gpus if isinstance(g.get("power_w"), (int, float))]
        if powers and isinstance(s.get("t_s"), (int, float)):
            points.append((s["t_s"], sum(powers)))
    if len(points) < 2:
        return None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(points))


def rel(a: float | None, b: float | None) -> float | None:
    """|a - b| / b, or None."""
    if a is None or b is None or b == 0:
        return None
    return abs(a - b) / abs(b)


def meter_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counter vs integrated power per run, idle baseline repeatability, phase closure."""
    from harness.contract.timeline_file import read_timeline

    per_run = []
    idle = []
    for r in runs:
        if r.get("status") != "ok":
            per_run.append({"run_id": r.get("run_id"), "status": r.get("status")})
            continue
        counter = gpu_counter_j(r)
        timeline = (r.get("timeline") or {}).get("file")
        integral = (
            integrated_power_j(read_timeline(Path(r["_dir"]) / timeline)) if timeline else None
        )
        phases = (r.get("energy") or {}).get("phases") or {}
        baseline = (r.get("energy") or {}).get("baseline") or {}
        gpu_idle = (baseline.get("power_w") or {}).get("gpu")
        if gpu_idle is not None and not baseline.get("cached"):
            idle.append(gpu_idle)
        per_run.append(
            {
                "run_id": r.get("run_id"),
                "window_s": (r.get("metrics") or {}).get("duration_s"),
                "counter_j": counter,
                "integrated_power_j": integral,
                "counter_vs_power_rel": rel(integral, counter),
                "idle_power_w": gpu_idle,
                "closure_rel_error": phases.get("closure_rel_error"),
            }
        )
    repeat = rel(idle[1], idle[0]) if len(idle) >= 2 else None
    ok = [p for p in per_run if p.get("counter_j") is not None]
    return {
        "runs": per_run,
        "baseline_repeat_rel": repeat,
        "checks": {
            "counter_vs_power": _verdict(
                [p["counter_vs_power_rel"] for p in ok], GOALS["counter_vs_power"]
            ),
            "baseline_repeat": _verdict([repeat], GOALS["baseline_repeat"]),
            "closure": _verdict([p["closure_rel_error"] for p in ok], GOALS["closure"]),
        },
    }


def _verdict(values: list[float | None], goal: float) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "no data"
    worst = max(vals)
    return f"{'met' if worst <= goal else 'missed'} (worst {worst:.2%}, goal {goal:.0%})"


def overhead_ratio(log: str) -> float | None:
    """The median of the line ``harness/bare throughput ratio: median X`` overhead.py prints."""
    for line in reversed(log.splitlines()):
        if line.startswith("harness/bare throughput ratio: median"):
            try:
                return float(line.split("median", 1)[1].split()[0])
            except (IndexError, ValueError):
                return None
    return None


def sweep_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per ok run: model, precision, quantisation, batch, J/output token, tok/s."""
    rows = []
    for r in runs:
        if r.get("status") != "ok":
            continue
        cfg = r.get("config") or {}
        m = r.get("metrics") or {}
        model = cfg.get("model")
        rows.append(
            {
                "experiment_id": r.get("experiment_id"),
                "cycle": r.get("cycle"),
                "model": model.get("hf") if isinstance(model, dict) else model,
                "precision": cfg.get("precision"),
                "quantization": (cfg.get("pytorch") or {}).get("quantization"),
                "batch_size": cfg.get("batch_size"),
                "j_per_output_token": m.get("j_per_output_token"),
                "throughput_out_tok_s": m.get("throughput_out_tok_s"),
            }
        )
    return rows


def junit_counts(xml: Path) -> dict[str, int]:
    """tests / failures / errors / skipped of a pytest junit XML file ({} when missing)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return {}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {}
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def environment(env: dict[str, str]) -> dict[str, Any]:
    """GPU, driver, CUDA, torch and transformers versions of this machine."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            info["nvidia_smi"] = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=name,uuid,driver_version,power.limit,memory.total",
                    "--format=csv,noheader",
                ],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            ).stdout.strip()
    probe = textwrap.dedent(
        """
        import json, importlib.metadata as md
        out = {}
        for d in ("torch", "transformers", "accelerate", "bitsandbytes", "nvidia-ml-py"):
            try: out[d] = md.version(d)
            except md.PackageNotFoundError: out[d] = None
        try:
            import torch
            out["cuda"] = torch.version.cuda
            out["cuda_available"] = torch.cuda.is_available()
            if torch.cuda.is_available(): out["gpu"] = torch.cuda.get_device_name(0)
        except Exception as e: out["torch_error"] = str(e)
        print(json.dumps(out))
        """
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        info["packages"] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, IndexError, json.JSONDecodeError):
        info["packages"] = None
    return info


def write_fake_nvml(folder: Path) -> None:
    """A ``pynvml`` module for --dry-run: tests/fakes/fake_pynvml.py with one simulated H100 drawing
    a steady 150 W, its energy counter advancing with the wall clock."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pynvml.py").write_text(
        textwrap.dedent(
            '''
            """Dry run only: the fake pynvml of lembench's tests with one simulated GPU."""
            import sys, threading, time
            from tests.fakes.fake_pynvml import FakeGpu, FakePynvml

            _gpu = FakeGpu(uuid="GPU-00000000-dry-run", power_mw=150_000)
            _fake = FakePynvml([_gpu])
            _t0 = time.monotonic()

            def _tick():
                while True:
                    _gpu.energy_mj = int((time.monotonic() - _t0) * 150_000)
                    time.sleep(0.005)

            threading.Thread(target=_tick, daemon=True).start()
            sys.modules[__name__] = _fake
            '''
        ),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: ./gpu-validation-<utc>)"
    )
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget (s)")
    parser.add_argument("--dry-run", action="store_true", help="CPU + fake NVML, tiny sizes")
    parser.add_argument(
        "--steps",
        default="tests,meters,overhead,sweep,reproduce",
        help="comma-separated subset of: tests, meters, overhead, sweep, reproduce",
    )
    args = parser.parse_args(argv)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or Path(f"gpu-validation-{stamp}")).resolve()
    if out.exists() and any(out.iterdir()):
        print(
            f"gpu_validation: --out {out} exists and is not empty; choose a new folder",
            file=sys.stderr,
        )
        return 2
    out.mkdir(parents=True, exist_ok=True)
    wanted = {s.strip() for s in args.steps.split(",") if s.strip()}
    unknown = wanted - {"tests", "meters", "overhead", "sweep", "reproduce"}
    if unknown:
        print(f"gpu_validation: --steps: unknown {sorted(unknown)}", file=sys.stderr)
        return 2
    v = Validation(out, Budget(args.budget_s), args.dry_run)
    # Minimum seconds each step needs to be worth starting, on an H100 (model builds included).
    plan = [
        ("tests", "gpu-tests", 20, v.gpu_tests),
        ("meters", "meter-validation", 90, v.meter_validation),
        ("overhead", "overhead", 60, v.overhead),
        ("sweep", "reference-sweep", 60, v.sweep),
        ("reproduce", "reproduce", 10, v.reproduce),
    ]
    for key, name, need, fn in plan:
        if key in wanted:
            v.step(name, 5 if args.dry_run else need, fn)
    archive = v.finish()
    print(json.dumps([asdict(s) | {"figures": "see validation.json"} for s in v.steps], indent=1))
    print(f"validation.json and everything else: {out}\narchive: {archive}")
    return 0 if all(s.status != "failed" for s in v.steps) else 1


if __name__ == "__main__":
    raise SystemExit(main())
