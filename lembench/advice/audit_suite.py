"""The static checks of ``lembench audit`` on a suite: loaded with ``lembench.suite.load_suite``
(so a bad suite gives the normal one-line error) and checked per expanded experiment. A finding is
reported at the line where the value is written (a ``sweep:`` key, the base ``experiment:``, or
one of ``experiments:``), once, with the experiments it concerns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.contract.registry import option_block
from lembench.advice.audit_python import FOUR_BIT_WHY, INT8_WHY, Finding
from lembench.advice.pitfalls import BATCH_ONE, FOUR_BIT, FOUR_BIT_KINDS, INT8
from lembench.advice.sizes import SMALL_MODEL_PARAMS, human, model_params
from lembench.advice.suggest import Suggestion
from lembench.results.aggregate import model_label


def _node_at(root: yaml.Node | None, parts: list[Any]) -> yaml.Node | None:
    """The key node (or list item) of ``parts`` in a composed YAML document; None when absent."""
    node, found = root, None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return None
            found, node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return None
            found = node = node.value[part]
        else:
            return None
    return found


class _Lines:
    """Where values are written in the suite file (its own text; values inherited through
    ``_extends`` are reported at the nearest key this file has, else line 1)."""

    def __init__(self, path: Path, sweep: dict[str, Any]) -> None:
        try:
            self.root = yaml.compose(path.read_text("utf-8"), Loader=yaml.SafeLoader)
        except (OSError, yaml.YAMLError):  # load_suite read and parsed it already
            self.root = None
        self.sweep = sweep
        items = _node_at(self.root, ["experiments"])
        self.n = len(items.value) if isinstance(items, yaml.SequenceNode) else 0

    def node(self, parts: list[Any]) -> yaml.Node | None:
        return _node_at(self.root, parts)

    def locate(self, path: list[str]) -> tuple[int, int]:
        dotted = ".".join(path)
        candidates = [["sweep", k] for k in self.sweep if dotted == k or dotted.startswith(k + ".")]
        candidates += [["experiment", *path]]
        candidates += [["experiments", i, *path] for i in range(self.n)]
        candidates += [["experiment"], ["experiments"]]
        for parts in candidates:
            node = self.node(parts)
            if node is not None:
                return node.start_mark.line + 1, node.start_mark.column + 1
        return 1, 1


def check_suite(path: Path, display: str) -> list[Finding]:
    """Findings in the suite file at ``path``, over its expanded experiments."""
    from lembench.suite import load_suite

    suite = load_suite(path)  # bad suites: the normal one-line error
    lines = _Lines(path, suite.sweep)
    found: dict[tuple[str, tuple[int, int]], tuple[Finding, list[str]]] = {}

    def add(finding: Finding, key_path: list[str], experiment_id: str) -> None:
        where = lines.locate(key_path)
        entry = found.setdefault((finding.code, where), (finding, []))
        entry[1].append(experiment_id)

    for e in suite.experiments:
        c = e.config
        model = model_label(c["model"])
        block_name = option_block(c["backend"])
        block = c.get(block_name) or {}
        quant = block.get("quantization")
        if c["backend"] == "pytorch" and quant == "bnb_int8" and "llm_int8_threshold" not in block:
            message = f"pytorch.quantization: bnb_int8 without llm_int8_threshold: {INT8_WHY}"
            run = Suggestion(
                "measure it against unquantised fp16/bf16 weights in this suite",
                {"sweep": {"pytorch.quantization": [None, "bnb_int8"]}},
            )
            add(
                Finding(0, 0, INT8, message, model, quant, (), run),
                ["pytorch", "quantization"],
                e.experiment_id,
            )
        if quant in FOUR_BIT_KINDS:
            ref = str(suite.models.get(e.experiment_id, {}).get("ref") or model)
            params, how = model_params(ref, suite.base_dir)
            if params is None and ref != model:
                params, how = model_params(model, suite.base_dir)
            if params is not None and params < SMALL_MODEL_PARAMS:
                message = (
                    f"{block_name}.quantization: {quant} on {model} ({human(params)} parameters, "
                    f"from the {how}): {FOUR_BIT_WHY}"
                )
                run = Suggestion(
                    "measure it against unquantised fp16/bf16 weights in this suite",
                    {"sweep": {f"{block_name}.quantization": [None, quant]}},
                )
                add(
                    Finding(0, 0, FOUR_BIT, message, model, quant, (), run),
                    [block_name, "quantization"],
                    e.experiment_id,
                )
    # Under traffic the engine forms its batches from the requests in flight (batch_size does not
    # apply), so only experiments that send static batches can be "batch size 1".
    static = [e for e in suite.experiments if not e.config.get("traffic")]
    if static and all(e.config["batch_size"] == 1 for e in static):
        written = lines.node(["experiment", "batch_size"]) or lines.node(["sweep", "batch_size"])
        how = "set to 1" if written is not None else "batch_size is not set: the default is 1"
        message = (
            f"every experiment runs at batch size 1 ({how}): the suite cannot show what batching "
            "saves"
        )
        run = Suggestion("add batch sizes to this suite", {"sweep": {"batch_size": [1, 8, 32]}})
        model = model_label(static[0].config["model"])
        for e in static:
            add(
                Finding(0, 0, BATCH_ONE, message, model, None, (), run),
                ["batch_size"],
                e.experiment_id,
            )
    out = [
        Finding(
            line,
            col,
            f.code,
            f"{f.message} ({_count(ids)})",
            f.model,
            f.quantization,
            tuple(ids),
            f.suggestion,
        )
        for (_, (line, col)), (f, ids) in found.items()
    ]
    return sorted(out, key=lambda f: (f.line, f.col, f.code))


def _count(ids: list[str]) -> str:
    shown = ", ".join(i[:8] for i in ids[:4]) + (f", +{len(ids) - 4} more" if len(ids) > 4 else "")
    return f"{len(ids)} experiment{'s' * (len(ids) != 1)}: {shown}"
