"""Suite loading: YAML with ``_extends`` -> schema validation -> grid expansion -> experiments with
stable ids. ``load_suite`` is the entry point; every bad input raises ``lembench.errors.UserError``.
"""

from lembench.suite.defaults import fill_defaults
from lembench.suite.expand import canonical_json, experiment_id
from lembench.suite.loader import Experiment, Suite, load_suite

__all__ = [
    "Experiment",
    "Suite",
    "canonical_json",
    "experiment_id",
    "fill_defaults",
    "load_suite",
]
