"""Browser tier: the generated site in Debian's headless Chromium, driven by Playwright for Python.

Playwright never downloads a browser here: it is pointed at the system chromium. Without chromium
or the playwright package the tier skips with the reason, except under CI (env CI set to a true
value), where a missing browser is a failure: CI must run this tier.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lembench.report import build_site
from lembench.report.synthetic import config, demo, result, write_run
from lembench.suite.expand import experiment_id

CHROMIUM = Path(os.environ.get("LEMBENCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DATA = Path(__file__).parent.parent / "data"
XSS = "<img src=x onerror=alert(1)>"
#: The real quickstart's two experiments (batch 1 and batch 4) under tests/data/runs.
QUICKSTART_PAIR = ("824987d94347", "223aff7a89d3")
#: Two synthetic demo experiments: vllm bf16 on the H100 at batch 1 and at batch 16.
SHOWCASE_A = experiment_id(config("synthetic/demo-8b", "vllm", "bf16", 1))
SHOWCASE_B = experiment_id(config("synthetic/demo-8b", "vllm", "bf16", 16))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"browser tier cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The system chromium, launched headless through Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright; no browser download)")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Site:
    """A built site and what it must contain."""

    path: Path
    experiments: int

    def url(self, page: str = "index.html") -> str:
        return (self.path / page).as_uri()


def _copy_v1(root: Path) -> None:
    import json

    for src in sorted(DATA.glob("result-v1-*.json")):
        doc = json.loads(src.read_text("utf-8"))
        folder = root / doc["suite"] / doc["experiment_id"] / doc["run_id"]
        folder.mkdir(parents=True)
        shutil.copyfile(src, folder / "result.json")


@pytest.fixture(scope="session")
def showcase(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """Synthetic demo results (labelled synthetic) plus the real v1 results."""
    root = tmp_path_factory.mktemp("showcase-results")
    demo(root)
    _copy_v1(root)
    summary = build_site(
        root,
        tmp_path_factory.mktemp("showcase") / "site",
        comparisons=[(SHOWCASE_A, SHOWCASE_B)],
    )
    return Site(summary.out, summary.experiments)


@pytest.fixture(scope="session")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """Only real measured results: the run tree frozen under tests/data/runs (quickstart and a
    mixed suite with a failed load group, with their timelines) plus the real v1 files. The README
    screenshot is taken of this site, so it shows no number lembench did not measure."""
    root = tmp_path_factory.mktemp("measured-results")
    shutil.copytree(DATA / "runs", root, dirs_exist_ok=True)
    _copy_v1(root)
    summary = build_site(
        root,
        tmp_path_factory.mktemp("measured") / "site",
        comparisons=[QUICKSTART_PAIR],  # batch 1 vs batch 4 of the real quickstart
    )
    return Site(summary.out, summary.experiments)


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A site whose model name and warning message are HTML/JS payloads."""
    root = tmp_path_factory.mktemp("hostile-results")
    for cycle in (1, 2):
        doc, samples = result(
            config(XSS, "vllm", "bf16", 4),
            cycle=cycle,
            warnings=[{"code": "throttling", "message": "<script>alert(2)</script>"}],
        )
        write_run(root, doc, samples)
    write_run(root, result(config("synthetic/ok", "vllm", "bf16", 1))[0])
    summary = build_site(root, tmp_path_factory.mktemp("hostile") / "site")
    return Site(summary.out, summary.experiments)


@dataclass
class Watch:
    """What a page did: console errors, uncaught errors, dialogs and every request URL."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert not self.blocked, f"requests outside the site folder: {self.blocked}"
        assert all(u.startswith("file://") for u in self.requests), self.requests
        assert not self.console_errors, self.console_errors


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Watch]]:
    """A fresh page; every request that is not file:// is aborted and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    watch = Watch()

    def route(r: Any) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            watch.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    p = context.new_page()
    p.on("request", lambda req: watch.requests.append(req.url))
    p.on("console", lambda m: watch.console_errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: watch.console_errors.append(f"uncaught: {e}"))

    def on_dialog(d: Any) -> None:
        watch.dialogs.append(d.message)
        d.dismiss()

    p.on("dialog", on_dialog)
    yield p, watch
    context.close()
