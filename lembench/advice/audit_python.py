"""The static checks of ``lembench audit`` on inference code, read with ``ast`` (never imported
or run); ``audit_suite`` checks suites.

Checks (codes shared with ``lembench.advice.pitfalls``):

- ``int8_default_threshold``: 8-bit bitsandbytes (``load_in_8bit=True``; a suite's
  ``pytorch.quantization: bnb_int8``) without ``llm_int8_threshold``: LLM.int8() with the default
  threshold 6.0.
- ``four_bit_small_model``: 4-bit weights on a model under 3B parameters, the size taken from a
  bundled architecture config, a local ``config.json`` or a size in the model's name (unknown size:
  no finding).
- ``batch_size_one``: a literal ``batch_size=1`` (keyword or assignment), or ``.generate(`` called
  inside a ``for`` loop (one prompt per call, unless the loop walks batches: a stepped ``range``
  or a name with ``batch``/``chunk``); in a suite, every experiment at batch size 1.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lembench.advice.pitfalls import BATCH_ONE, FOUR_BIT, INT8
from lembench.advice.sizes import SMALL_MODEL_PARAMS, human, model_params
from lembench.advice.suggest import Suggestion
from lembench.errors import UserError

INT8_WHY = (
    "bitsandbytes then runs LLM.int8() with the default outlier threshold 6.0 (a mixed-precision "
    "decomposition: an fp16 path for outlier features beside the int8 one), usually slower and "
    "costlier per token than plain fp16"
)
FOUR_BIT_WHY = (
    "below 3B parameters the dequantisation in every matrix multiply usually costs more than the "
    "memory traffic 4-bit weights save"
)


@dataclass(frozen=True)
class Finding:
    """One static finding."""

    line: int
    col: int
    code: str
    message: str
    model: str | None = None  # the model it concerns, when known
    quantization: str | None = None  # bnb_int8, bnb_nf4, ...
    experiment_ids: tuple[str, ...] = ()  # suite findings: the expanded experiments concerned
    suggestion: Suggestion | None = None  # the experiment that would measure it
    notes: tuple[str, ...] = field(default_factory=tuple)


def _true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


class _Scan(ast.NodeVisitor):
    """One pass: string and call assignments (to resolve names), calls, loops."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}
        self.calls_by_name: dict[str, ast.Call] = {}
        self.calls: list[tuple[ast.Call, list[ast.For | ast.AsyncFor]]] = []
        self.batch_assigns: list[ast.Assign] = []
        self._loops: list[ast.For | ast.AsyncFor] = []

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if not isinstance(target, ast.Name):
                continue
            v = node.value
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                self.strings[target.id] = v.value
            elif isinstance(v, ast.Call):
                self.calls_by_name[target.id] = v
            elif target.id.lower() == "batch_size" and isinstance(v, ast.Constant) and v.value == 1:
                self.batch_assigns.append(node)
        self.generic_visit(node)

    def _loop(self, node: ast.For | ast.AsyncFor) -> None:
        self._loops.append(node)
        self.generic_visit(node)
        self._loops.pop()

    visit_For = _loop
    visit_AsyncFor = _loop

    def _scope(self, node: ast.AST) -> None:
        saved, self._loops = self._loops, []  # a loop outside a function does not run its body
        self.generic_visit(node)
        self._loops = saved

    visit_FunctionDef = _scope
    visit_AsyncFunctionDef = _scope
    visit_Lambda = _scope

    def visit_Call(self, node: ast.Call) -> None:
        self.calls.append((node, list(self._loops)))
        self.generic_visit(node)


def _keywords(call: ast.Call) -> tuple[dict[str, ast.keyword], bool]:
    """Named keywords of a call, and whether it also passes ``**kwargs`` (then absent keywords
    may be there: no finding)."""
    named = {k.arg: k for k in call.keywords if k.arg is not None}
    return named, any(k.arg is None for k in call.keywords)


def _model_id(call: ast.Call, scan: _Scan) -> str | None:
    node: ast.AST | None = call.args[0] if call.args else None
    named, _ = _keywords(call)
    if node is None and "pretrained_model_name_or_path" in named:
        node = named["pretrained_model_name_or_path"].value
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return scan.strings.get(node.id)
    return None


def _four_bit_keyword(call: ast.Call) -> ast.keyword | None:
    named, _ = _keywords(call)
    if _true(named["load_in_4bit"].value if "load_in_4bit" in named else None):
        return named["load_in_4bit"]
    return next((k for name, k in named.items() if name.startswith("bnb_4bit_")), None)


def _quant_config(call: ast.Call, scan: _Scan) -> ast.Call | None:
    named, _ = _keywords(call)
    if "quantization_config" not in named:
        return None
    v = named["quantization_config"].value
    if isinstance(v, ast.Call):
        return v
    return scan.calls_by_name.get(v.id) if isinstance(v, ast.Name) else None


def _stepped_or_batched(loop: ast.For | ast.AsyncFor) -> bool:
    """A loop over batches: ``range(a, b, step)``, or a target/iterable named like a batch."""
    it = loop.iter
    if isinstance(it, ast.Call) and _call_name(it) == "range" and len(it.args) == 3:
        return True
    text = (ast.unparse(loop.target) + " " + ast.unparse(it)).lower()
    return "batch" in text or "chunk" in text


def check_python(source: str, display: str, base: Path) -> list[Finding]:
    """Findings in Python source (parsed, never run). Raises UserError when it does not parse."""
    try:
        tree = ast.parse(source, filename=display)
    except SyntaxError as e:
        raise UserError(f"line {e.lineno}: not valid Python ({e.msg})", file=display) from None
    scan = _Scan()
    scan.visit(tree)
    models: dict[int, str | None] = {}  # id(quantization config call) -> model of its load
    for call, _ in scan.calls:
        if _call_name(call).endswith("from_pretrained"):
            model = _model_id(call, scan)
            models[id(call)] = model
            config = _quant_config(call, scan)
            if config is not None:
                models[id(config)] = model
    out: list[Finding] = []
    for call, loops in scan.calls:
        named, star = _keywords(call)
        model = models.get(id(call))
        k8 = named.get("load_in_8bit")
        if k8 is not None and _true(k8.value) and "llm_int8_threshold" not in named and not star:
            out.append(
                Finding(
                    k8.value.lineno,
                    k8.value.col_offset + 1,
                    INT8,
                    f"load_in_8bit=True without llm_int8_threshold: {INT8_WHY}",
                    model,
                    "bnb_int8",
                    suggestion=_python_run(model, {"pytorch.quantization": [None, "bnb_int8"]}),
                )
            )
        if _call_name(call).endswith("from_pretrained"):
            out += _four_bit_python(call, scan, model, base)
        kb = named.get("batch_size")
        if kb is not None and isinstance(kb.value, ast.Constant) and kb.value.value == 1:
            out.append(_batch_literal(kb.value.lineno, kb.value.col_offset + 1, model))
        generate = isinstance(call.func, ast.Attribute) and call.func.attr == "generate"
        if generate and loops and not any(_stepped_or_batched(loop) for loop in loops):
            out.append(
                Finding(
                    call.lineno,
                    call.col_offset + 1,
                    BATCH_ONE,
                    ".generate() inside a for loop: if each iteration passes one prompt, "
                    "every request runs at batch size 1; pass a list of prompts (padded) per "
                    "call instead (heuristic: a generate call in a loop that is not over a "
                    "stepped range or something named batch/chunk)",
                    model,
                    suggestion=_python_run(model, {"batch_size": [1, 8, 32]}),
                )
            )
    for node in scan.batch_assigns:
        out.append(_batch_literal(node.lineno, node.col_offset + 1, None))
    return _dedupe(out)


def _four_bit_python(call: ast.Call, scan: _Scan, model: str | None, base: Path) -> list[Finding]:
    where = _four_bit_keyword(call)
    if where is None:
        config = _quant_config(call, scan)  # BitsAndBytesConfig(load_in_4bit=True, ...)
        where = None if config is None else _four_bit_keyword(config)
    if where is None or model is None:
        return []
    params, how = model_params(model, base)
    if params is None or params >= SMALL_MODEL_PARAMS:
        return []
    node = where.value
    return [
        Finding(
            node.lineno,
            node.col_offset + 1,
            FOUR_BIT,
            f"4-bit weights on {model} ({human(params)} parameters, from the {how}): "
            f"{FOUR_BIT_WHY}",
            model,
            "bnb_nf4",
            suggestion=_python_run(model, {"pytorch.quantization": [None, "bnb_nf4"]}),
        )
    ]


def _batch_literal(line: int, col: int, model: str | None) -> Finding:
    return Finding(
        line,
        col,
        BATCH_ONE,
        "batch_size=1: one request per forward pass leaves most of the hardware idle; larger "
        "batches usually cut the energy per token severalfold (at some latency)",
        model,
        suggestion=_python_run(model, {"batch_size": [1, 8, 32]}),
    )


def _python_run(model: str | None, sweep: dict[str, Any]) -> Suggestion:
    """A suite that measures what a code finding is about."""
    experiment: dict[str, Any] = {"backend": "pytorch"}
    if model:
        experiment["model"] = model
    if "pytorch.quantization" in sweep:
        experiment.update(device="cuda", precision="fp16")
    whose = "" if model else " (set model: to yours)"
    return Suggestion(f"measure it with a suite{whose}", {"experiment": experiment, "sweep": sweep})


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: dict[tuple[int, str], Finding] = {}
    for f in findings:
        seen.setdefault((f.line, f.code), f)
    return sorted(seen.values(), key=lambda f: (f.line, f.col, f.code))
