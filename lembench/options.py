"""What several ``lembench`` commands share, defined once so they read and behave the same:
click options (name, default, help), the output consoles and the exit code for failed runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

#: Exit code when a suite ran but some experiments failed (each failure is stored with its reason).
EXIT_SOME_FAILED = 3


def console(stderr: bool = False) -> Console:
    """A console for command output on stdout (or stderr). Off a terminal (CI logs, pipes) rich
    would wrap tables at 80 columns; they get 200 instead."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 200)


results_dir_option = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Root of the results store.",
)

runtime_option = click.option(
    "--runtime",
    "runtime_name",
    type=click.Choice(["auto", "local", "docker", "slurm"]),
    help="Override the suite's runtime.",
)
