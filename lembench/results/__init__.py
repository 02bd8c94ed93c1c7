"""Stored results on the host: reading old versions (``migrate``), what a run was measured on
(``environment``), confidence intervals (``stats``) and per-experiment summaries (``aggregate``).

The package imports no model or engine code; ``aggregate`` needs polars.
"""

from lembench.results.aggregate import (
    IDENTITY,
    METRICS,
    MixedEnvironmentError,
    model_label,
    run_row,
    runs_frame,
    summarise,
    workload_label,
)
from lembench.results.environment import environment_fields, environment_key, hardware_label
from lembench.results.migrate import CURRENT_VERSION, upgrade
from lembench.results.stats import cv, mean_ci, t_critical

__all__ = [
    "CURRENT_VERSION",
    "IDENTITY",
    "METRICS",
    "MixedEnvironmentError",
    "cv",
    "environment_fields",
    "environment_key",
    "hardware_label",
    "mean_ci",
    "model_label",
    "run_row",
    "runs_frame",
    "summarise",
    "t_critical",
    "upgrade",
    "workload_label",
]
