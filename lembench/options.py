"""Click options that several ``lembench`` commands share, defined once so they read the same
everywhere (name, default, help)."""

from __future__ import annotations

from pathlib import Path

import click

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
    type=click.Choice(["auto", "local", "docker"]),
    help="Override the suite's runtime.",
)
