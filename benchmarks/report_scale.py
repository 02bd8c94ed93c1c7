"""Report scale: how long aggregation and site rendering take for many stored runs.

Writes N SYNTHETIC raw runs (lembench.report.synthetic: suite ``synthetic-scale``, models named
``synthetic/...``; made-up numbers, not measurements) into a temporary folder, then times:

- parse: reading every result.json through ResultStore.iter_runs (JSON + schema upgrade);
- aggregate: runs_frame + summarise over the same stream (includes parsing; goal: 100k runs
  <= 10 s on 2 cores);
- collect: the report's single pass (aggregate + per-run data for the experiment pages);
- render: build_site from the collected data (every page, chart and download; goal: a 10k-row
  site <= 10 s), with the size of the index page;
- open: the index page loaded in headless Chromium (Debian's, through Playwright) until its
  script has run (goal: under 1 s); '-' where chromium or playwright is missing.

    .venv/bin/python benchmarks/report_scale.py [--sizes 1000 10000 100000] [--cycles 1]
        [--render-max 10000] [--keep]

Rows (experiments) = runs / cycles; the default of one cycle makes every run its own leaderboard
row and page, the worst case for rendering. Sites above --render-max rows are not rendered.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lembench.report.build import build_site
from lembench.report.data import collect
from lembench.report.synthetic import config, result, write_run
from lembench.results.aggregate import runs_frame, summarise
from lembench.store import ResultStore

MODELS = [f"synthetic/scale-{i:02d}" for i in range(20)]
BACKENDS = ("vllm", "pytorch", "llamacpp", "tensorrt-llm")
PRECISIONS = ("bf16", "fp16", "fp8", "int4")
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
HARDWARE = ("NVIDIA H100 80GB HBM3", "NVIDIA L4", None)  # None: CPU, estimated energy


def generate(root: Path, runs: int, cycles: int, timelines: bool) -> int:
    """Write ``runs`` synthetic runs (runs // cycles experiments); returns the experiment count."""
    experiments = max(1, runs // cycles)
    combos = len(MODELS) * len(BACKENDS) * len(PRECISIONS) * len(BATCHES)
    written = 0
    for e in range(experiments):
        i, variant = e % combos, e // combos
        model = MODELS[i % len(MODELS)]
        backend = BACKENDS[(i // len(MODELS)) % len(BACKENDS)]
        precision = PRECISIONS[(i // (len(MODELS) * len(BACKENDS))) % len(PRECISIONS)]
        batch = BATCHES[(i // (len(MODELS) * len(BACKENDS) * len(PRECISIONS))) % len(BATCHES)]
        hardware = HARDWARE[e % len(HARDWARE)]
        cfg = config(model, backend, precision, batch, output_tokens=32 + variant)
        for cycle in range(1, cycles + 1):
            if written == runs:
                break
            doc, samples = result(
                cfg,
                suite="synthetic-scale",
                cycle=cycle,
                cycles=cycles,
                hardware=hardware,
                estimate=hardware is None,
                status="failed" if (e * cycles + cycle) % 97 == 0 else "ok",
                timeline=timelines,
                timeline_interval_s=0.1,  # the 10 Hz default
            )
            write_run(root, doc, samples)
            written += 1
    return experiments


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the page workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


CHROMIUM = Path(os.environ.get("LEMBENCH_CHROMIUM", "/usr/bin/chromium"))


def open_in_chromium(index: Path) -> float | None:
    """Seconds from navigation to the leaderboard script having run (its filters shown) in
    headless Chromium; None without chromium or playwright. The browser starts beforehand."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not CHROMIUM.is_file():
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"]
        )
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(index.as_uri(), wait_until="load")
        page.wait_for_selector("#filters:not([hidden])")
        seconds = time.perf_counter() - start
        browser.close()
    return seconds


def measure(base: Path, n: int, cycles: int, render_max: int) -> str:
    """Generate ``n`` runs under ``base`` and time reading, aggregating and rendering them."""
    rows = max(1, n // cycles)
    render = rows <= render_max
    generate(base / "results", n, cycles, render)
    store = ResultStore(base / "results")
    files = list((base / "results").rglob("result.json"))
    kib = sum(f.stat().st_size for f in files) / len(files) / 1024
    count, t_parse = timed(lambda: sum(1 for _ in store.iter_runs()))
    assert count == n, (count, n)
    summary, t_agg = timed(lambda: summarise(runs_frame(store.iter_runs())))
    assert summary.height == rows, (summary.height, rows)
    collected, t_collect = timed(lambda: collect(base / "results"))
    if render:
        cpu = cpu_seconds()
        site, t_render = timed(
            lambda: build_site(base / "results", base / "site", collected=collected)
        )
        cpu = cpu_seconds() - cpu
        index_kib = (site.out / "index.html").stat().st_size / 1024
        size = sum(p.stat().st_size for p in site.out.rglob("*") if p.is_file())
        t_open = open_in_chromium(site.out / "index.html")
        opened = "-" if t_open is None else f"{t_open:.2f}s"
        render_cols = (
            f"{t_render:7.2f}s {cpu:6.1f}s {index_kib:10.0f} {size / 2**20:9.1f} {opened:>6}"
        )
    else:
        render_cols = f"{'skipped':>8} {'-':>7} {'-':>10} {'-':>9} {'-':>6}"
    return (
        f"{n:7d} {rows:7d} {kib:8.1f} {t_parse:6.2f}s {t_agg:9.2f}s "
        f"{t_collect:7.2f}s {render_cols} {os.getloadavg()[0]:5.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--cycles", type=int, default=1)
    parser.add_argument("--render-max", type=int, default=10_000, help="largest site rendered")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()

    print(f"SYNTHETIC runs (not measurements); {os.cpu_count()} CPUs; cycles {args.cycles}")
    print("wall-clock seconds; cpu: render CPU incl. page workers; load: 1-min load average")
    print(
        f"{'runs':>7} {'rows':>7} {'KiB/run':>8} {'parse':>7} {'aggregate':>10} "
        f"{'collect':>8} {'render':>8} {'cpu':>7} {'index KiB':>10} {'site MiB':>9} {'open':>6} "
        f"{'load':>5}"
    )
    for n in args.sizes:
        base = Path(tempfile.mkdtemp(prefix=f"lembench-report-scale-synthetic-{n}-"))
        try:
            print(measure(base, n, args.cycles, args.render_max), flush=True)
        finally:
            if args.keep:
                print(f"  kept {base}")
            else:
                shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
