"""Live progress of a suite run: one line per stored run, and the harness's current step."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from lembench.display import ESTIMATE, fmt, method_label
from lembench.plan import Launch
from lembench.store import StoredRun


class Progress:
    """Progress of a suite run: one line per stored run, and the harness's current step."""

    def __init__(self, console: Console, launches: list[Launch], cycles: int) -> None:
        self.console = console
        self.total = sum(len(launch.experiments) for launch in launches)
        self.done = 0
        self.cycles = cycles
        self.status = console.status("starting", spinner="dots") if console.is_terminal else None

    def __enter__(self) -> Progress:
        if self.status is not None:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def _step(self, launch: Launch, text: str) -> None:
        line = f"[{self.done}/{self.total}] cycle {launch.cycle}/{self.cycles} · {text}"
        if self.status is not None:
            self.status.update(line)
        else:
            self.console.print(line, highlight=False)

    def on_event(self, launch: Launch, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "loading":
            self._step(
                launch, f"loading {escape(str(event.get('model')))} ({event.get('backend')})"
            )
        elif kind == "loaded":
            self._step(launch, f"model loaded in {event.get('seconds')} s")
        elif kind in ("warmup", "measuring", "scoring"):
            exp = launch.experiments[int(event.get("index", 0))]
            what = "warm already (group warmup reused)" if event.get("reused") else kind
            self._step(launch, f"{exp.experiment_id} batch {exp.config['batch_size']} · {what}")
        elif kind == "fatal":
            self._step(launch, f"[red]harness gave up: {escape(str(event.get('message')))}[/red]")

    def on_stored(self, run: StoredRun) -> None:
        self.done += 1
        r = run.result
        head = f"[{self.done}/{self.total}] cycle {r['cycle']}/{r['cycles']} {r['experiment_id']}"
        if r["status"] == "ok":
            m, e = r["metrics"], r["energy"]
            scope = e.get("scope") or {}
            if scope.get("ranked") == "measured" and scope.get("estimated_domains"):
                energy = (
                    f"{fmt(m.get('j_per_output_token_measured'))} J/out tok "
                    f"({escape(scope['measured_method'])}; {fmt(m['j_per_output_token'])} "
                    f"whole system, {ESTIMATE})"
                )
            else:
                energy = (
                    f"{fmt(m['j_per_output_token'])} J/out tok "
                    f"({method_label(e['method'], e['is_estimate'])})"
                )
            self.console.print(
                f"[green]✓[/green] {head} batch {r['config']['batch_size']}: {energy}, "
                f"{m['throughput_out_tok_s']:.1f} tok/s",
                highlight=False,
            )
        else:
            err = r["error"]
            self.console.print(
                f"[red]✗[/red] {head} failed: {err['reason']}: {escape(err['message'])}",
                highlight=False,
            )
