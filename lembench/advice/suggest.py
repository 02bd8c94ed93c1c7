"""The experiment to run when the data cannot answer: a suite snippet and why.

A snippet is a small mapping in suite syntax (``experiment:`` keys merged into the base experiment,
``sweep:``, ``cycles:``) to add to the suite of the experiment it builds on; ``yaml_lines`` prints
it the way a suite file writes it, one flow-style line per key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from lembench.advice.compare import model_family
from lembench.advice.data import Experiment

_PRECISION_ORDER = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Suggestion:
    """An experiment to run: why, and the suite snippet that runs it."""

    text: str
    snippet: dict[str, Any] = field(default_factory=dict)
    base: Experiment | None = None  # the experiment whose suite the snippet extends

    def yaml_lines(self) -> list[str]:
        return yaml_lines(self.snippet)

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "suite_snippet": "\n".join(self.yaml_lines()),
            "based_on": None if self.base is None else self.base.experiment_id,
            "suite": None if self.base is None else self.base.suite,
        }


def yaml_lines(snippet: dict[str, Any]) -> list[str]:
    """``key: {flow: style}`` per top-level key (``sweep: {batch_size: [1, 8, 32]}``)."""
    lines = []
    for k, v in snippet.items():
        text = yaml.safe_dump(v, default_flow_style=True, sort_keys=False, width=1000)
        text = text.strip().removesuffix("...").strip()  # a scalar ends with a document end
        lines.append(f"{k}: {text}")
    return lines


def batch_sweep(e: Experiment, values: tuple[int, ...] = (1, 8, 32)) -> dict[str, Any]:
    return {"sweep": {"batch_size": sorted({e.batch_size, *values})}}


def for_lever(lever: str, e: Experiment) -> Suggestion:
    """The experiment that measures ``lever`` around experiment ``e``."""
    if lever == "batch_size":
        return Suggestion(
            "measure the same configuration at more batch sizes (batching usually cuts the "
            "energy per token, at some latency)",
            batch_sweep(e),
            e,
        )
    if lever == "precision":
        values = {e.precision, *(("fp32", "bf16") if e.on_cpu else ("fp16", "bf16"))}
        kv = " (llama.cpp: the KV cache type; the weights keep the GGUF's type)"
        return Suggestion(
            "measure the same configuration at another precision" + kv * (e.backend == "llamacpp"),
            {"sweep": {"precision": [p for p in _PRECISION_ORDER if p in values]}},
            e,
        )
    if lever == "quantization":
        return quantization(e)
    return backend(e)


def quantization(e: Experiment) -> Suggestion:
    """How to measure quantisation with ``e``'s backend."""
    if e.backend == "pytorch":
        experiment: dict[str, Any] = {"device": "cuda"}
        if e.precision == "fp32":
            experiment["precision"] = "fp16"
        return Suggestion(
            "measure bitsandbytes quantisation against 16-bit weights (bitsandbytes needs a CUDA "
            "GPU)",
            {
                "experiment": experiment,
                "sweep": {"pytorch.quantization": [None, "bnb_int8", "bnb_nf4"]},
            },
            e,
        )
    if e.backend == "vllm":
        return Suggestion(
            "measure vLLM's FP8 weights against unquantised ones",
            {"sweep": {"vllm.quantization": [None, "fp8"]}},
            e,
        )
    if e.backend == "tensorrt-llm":
        return Suggestion(
            "measure TensorRT-LLM quantisation modes against unquantised weights",
            {"sweep": {"tensorrt.quantization": [None, "fp8", "int4_awq"]}},
            e,
        )
    if e.backend == "llamacpp":
        family = model_family(e).removesuffix(".gguf")
        return Suggestion(
            "llama.cpp's quantisation is the GGUF file's weight type: measure GGUF files of the "
            "same model at other types (replace the file names with yours)",
            {"sweep": {"model": [f"./{family}.Q8_0.gguf", f"./{family}.Q4_K_M.gguf"]}},
            e,
        )
    return Suggestion(
        f"the {e.backend} backend's server chooses the weights: run one server per quantisation "
        "and measure each with its own experiment",
        {},
        e,
    )


def backend(e: Experiment) -> Suggestion:
    """Measure the same configuration on another engine."""
    other = ("pytorch", "llamacpp") if e.on_cpu else ("pytorch", "vllm")
    values = list(dict.fromkeys([e.backend, *other]))
    note = (
        " (llamacpp needs a GGUF model; pytorch loads one too)"
        if "llamacpp" in values
        else " (vllm needs a Hugging Face model and a GPU)"
    )
    return Suggestion(
        "measure the same model, precision, batch size and workload on another engine" + note,
        {"sweep": {"backend": values}},
        e,
    )


def more_cycles(e: Experiment, cycles: int = 5) -> Suggestion:
    return Suggestion(
        f"repeat the measurement: cycles: {cycles} gives each experiment a 95% confidence interval"
        " (--resume keeps the runs already stored)",
        {"cycles": cycles},
        e,
    )
