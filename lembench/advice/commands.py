"""Click commands ``lembench advise``, ``lembench estimate`` and ``lembench audit``.

Bad input raises ``lembench.errors.UserError`` (one line, exit code 2 through
``lembench.cli.main``), including numbers that do not parse. ``audit`` exits 1 when it has findings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lembench.errors import UserError
from lembench.options import console

if TYPE_CHECKING:
    from lembench.advice.scenarios import Scenario

EXIT_FINDINGS = 1


class _Number(click.ParamType):
    """A float; a value that is not one is a one-line UserError (not click's usage block)."""

    name = "number"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        flag = param.opts[0] if param is not None else "value"
        try:
            number = float(value if isinstance(value, int | float) else str(value).strip())
        except ValueError:
            raise UserError(f"{flag}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # inf/nan would make every projection inf/nan
            raise UserError(f"{flag}: expected a finite number, got {value!r}")
        return number


NUMBER = _Number()


def _scenario_options(default: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(
            "--max-e2e-s", type=NUMBER, help="End-to-end latency limit, p99 seconds (api)."
        )(f)
        f = click.option("--max-itl-s", type=NUMBER, help="Inter-token latency limit, p99 s.")(f)
        f = click.option("--max-ttft-s", type=NUMBER, help="Time to first token limit, p99 s.")(f)
        return click.option(
            "--scenario",
            type=click.Choice(["chat", "api", "batch"]),
            default=default,
            show_default=default is not None,
            help="chat: TTFT and ITL targets; api: end-to-end latency; batch: none.",
        )(f)

    return wrap


def _build_scenario(
    name: str | None, ttft: float | None, itl: float | None, e2e: float | None
) -> Scenario | None:
    from lembench.advice.scenarios import scenario

    if name is None:
        if ttft is None and itl is None and e2e is None:
            return None
        return replace(
            scenario("batch", ttft, itl, e2e), name="custom", description="the limits given"
        )
    return scenario(name, ttft, itl, e2e)


_results_arg = click.argument("results", metavar="RESULTS", type=click.Path(path_type=Path))
_suite_opt = click.option("--suite", help="Only this suite (when RESULTS is a results root).")
_mixed_opt = click.option(
    "--allow-mixed",
    is_flag=True,
    help="Use experiments whose runs come from different environments or mix measured and "
    "estimated energy (as estimates) instead of refusing.",
)
_json_opt = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")


@click.command("advise")
@_results_arg
@_suite_opt
@_scenario_options("chat")
@_mixed_opt
@_json_opt
def advise_command(
    results: Path,
    suite: str | None,
    scenario: str,
    max_ttft_s: float | None,
    max_itl_s: float | None,
    max_e2e_s: float | None,
    allow_mixed: bool,
    as_json: bool,
) -> None:
    """Advice from your own measurements under RESULTS (a results root or one suite's folder):
    the lowest J/token configuration that meets the scenario's latency targets, what each lever
    (batch size, precision, quantisation, backend) changed, and known pitfalls. Every statement
    cites the experiment ids it rests on."""
    from lembench.advice.advise import advise
    from lembench.advice.advise import as_json as advice_json
    from lembench.advice.data import load
    from lembench.advice.render import print_advice

    scn = _build_scenario(scenario, max_ttft_s, max_itl_s, max_e2e_s)
    loaded = load(results, suite, allow_mixed)
    _skipped_note(loaded)
    advice = advise(loaded, scn)
    if as_json:
        click.echo(json.dumps(advice_json(advice), indent=2, ensure_ascii=False))
    else:
        print_advice(console(), advice)


def _skipped_note(loaded: Any) -> None:
    """Say on stderr (stdout may be JSON) how many result files were unusable."""
    n = len(loaded.skipped)
    if n:
        click.echo(
            f"{n} result file{'s' * (n != 1)} skipped as unusable "
            "(`lembench results check` lists them)",
            err=True,
        )


@click.command("estimate")
@_results_arg
@click.option(
    "--requests-per-month", "requests", type=NUMBER, required=True, help="Requests a month."
)
@click.option("--price-per-kwh", type=NUMBER, help="Electricity price per kWh (any currency).")
@click.option(
    "--grid-g-per-kwh",
    type=NUMBER,
    help="Grid carbon intensity, g CO2/kWh (default: the one the runs recorded).",
)
@click.option(
    "--pue", type=NUMBER, default=1.0, show_default=True, help="Facility power usage effectiveness."
)
@click.option("--current", metavar="ID", help="Experiment id (prefix) of your current setup.")
@_suite_opt
@_scenario_options(None)
@_mixed_opt
@_json_opt
def estimate_command(
    results: Path,
    requests: float,
    price_per_kwh: float | None,
    grid_g_per_kwh: float | None,
    pue: float,
    current: str | None,
    suite: str | None,
    scenario: str | None,
    max_ttft_s: float | None,
    max_itl_s: float | None,
    max_e2e_s: float | None,
    allow_mixed: bool,
    as_json: bool,
) -> None:
    """Monthly kWh, cost and CO2 for each configuration under RESULTS, projected from its
    measured energy per request; with --current, the savings of the best comparable one (meeting
    --scenario's latency targets when given)."""
    from lembench.advice.data import load
    from lembench.advice.estimate import Assumptions, project, projections_json
    from lembench.advice.render import print_projections

    assumptions = Assumptions(requests, pue, price_per_kwh, grid_g_per_kwh)
    assumptions.validate()  # before reading anything
    scn = _build_scenario(scenario, max_ttft_s, max_itl_s, max_e2e_s)
    loaded = load(results, suite, allow_mixed)
    _skipped_note(loaded)
    projections = project(loaded, assumptions, current, scn)
    if as_json:
        click.echo(json.dumps(projections_json(projections, scn), indent=2, ensure_ascii=False))
    else:
        print_projections(console(), projections)


@click.command("audit")
@click.argument("path", metavar="FILE.py|SUITE.yaml", type=click.Path(path_type=Path))
@click.option(
    "--results-dir",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Results root (or one suite's folder) to take measured evidence from.",
)
@_json_opt
def audit_command(path: Path, results_dir: Path, as_json: bool) -> None:
    """Static checks of inference code (.py, read with ast, never run) or a suite (.yaml) for
    known energy pitfalls, each with the measured evidence from --results-dir when it has some,
    else the experiment to run. Exit codes: 0 clean, 1 findings, 2 bad input."""
    from lembench.advice.audit import audit, audit_json, print_audit

    report = audit(path, results_dir)
    if as_json:
        click.echo(json.dumps(audit_json(report), indent=2, ensure_ascii=False))
    else:
        print_audit(report)
    if report.findings:
        raise SystemExit(EXIT_FINDINGS)
