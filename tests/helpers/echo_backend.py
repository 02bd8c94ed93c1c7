"""A fake inference engine for protocol tests: no model, real timestamps.

Behaviour is chosen by the model reference (``request['model']['ref']``) and batch size:
- ``fail-load``: load() raises ModelLoadError; ``unavailable``: load() raises BackendUnavailable
- batch size 3: generate() raises RuntimeError; batch size 5: generate() raises BackendOOM
Tokens are characters (ids = code points mod 1000); each generation step sleeps ``STEP_S``.
Without ``exact`` a request stops after 2 tokens (as if it produced EOS).
"""

from __future__ import annotations

import time

from harness.backends.base import (
    GREEDY,
    Backend,
    BackendOOM,
    BackendUnavailable,
    FlopsEstimate,
    Generation,
    LoadInfo,
    ModelLoadError,
    Prompt,
    Sampling,
)

STEP_S = 0.002
EOS_AFTER = 2


class EchoBackend(Backend):
    name = "echo"

    def load(self) -> LoadInfo:
        ref = self.model_ref["ref"]
        if ref == "fail-load":
            raise ModelLoadError("no such model: fail-load")
        if ref == "unavailable":
            raise BackendUnavailable("echo engine is not installed")
        return LoadInfo(
            device="cpu",
            dtype="fp32",
            load_time_s=0.0,
            model={"source": ref},
            versions={"echo": "1"},
        )

    def encode(self, text: str) -> list[int]:
        return [ord(c) % 1000 for c in text]

    def vocab_token_ids(self) -> list[int]:
        return list(range(1000))

    def generate(
        self,
        prompts: list[Prompt],
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> list[Generation]:
        if len(prompts) == 3:
            raise RuntimeError("engine exploded at batch 3")
        if len(prompts) == 5:
            raise BackendOOM("CUDA out of memory (fake)")
        steps = max_new_tokens if exact else min(max_new_tokens, EOS_AFTER)
        t_start = time.perf_counter()
        times = []
        for _ in range(steps):
            time.sleep(STEP_S)
            times.append(time.perf_counter())
        return [
            Generation(len(p.token_ids), steps, t_start, list(times), "x" * steps) for p in prompts
        ]

    def flops_per_token(self, sequence_length: int) -> FlopsEstimate:
        return FlopsEstimate(2.0e6, "params_x2", params=1_000_000, sequence_length=sequence_length)


class ServingEchoBackend(EchoBackend):
    """The echo engine as a server: ``agenerate`` serves one request at a time per call, with real
    asyncio sleeps, so concurrent requests overlap as on a serving engine."""

    name = "echo-serve"
    supports_traffic = True
    sampled: list[Sampling] = []  # noqa: RUF012 - what generate/agenerate were asked, for tests

    async def agenerate(
        self,
        prompt: Prompt,
        max_new_tokens: int,
        exact: bool,
        sampling: Sampling = GREEDY,
    ) -> Generation:
        import asyncio

        self.sampled.append(sampling)
        steps = max_new_tokens if exact else min(max_new_tokens, EOS_AFTER)
        t_start = time.perf_counter()
        times = []
        for _ in range(steps):
            await asyncio.sleep(STEP_S)
            times.append(time.perf_counter())
        return Generation(len(prompt.token_ids), steps, t_start, times, "x" * steps)


class BurningEchoBackend(EchoBackend):
    """The echo engine on a CPU that draws power: every generation step adds energy to the fake
    powercap tree at ``$LEMBENCH_POWERCAP_ROOT`` (package and DRAM counters), so the RAPL meter
    sees a real, rising timeline during the window. Shapes need no warmup of their own (as eager
    CPU engines)."""

    name = "echo-burn"
    STEP_UJ = (("intel-rapl:0", 50_000), ("intel-rapl:0:1", 5_000))  # 25 W, 2.5 W at STEP_S

    @property
    def warmup_per_shape(self) -> bool:
        return False

    def load(self) -> LoadInfo:
        from harness.hardware.threads import resolve_threads

        self.threads = resolve_threads(self.config)  # as a CPU engine does before computing
        return super().load()

    def generate(self, prompts, max_new_tokens, exact, sampling=GREEDY):
        import os
        from pathlib import Path

        from tests.fakes.powercap import add_uj

        root = Path(os.environ["LEMBENCH_POWERCAP_ROOT"])
        steps = max_new_tokens if exact else min(max_new_tokens, EOS_AFTER)
        t_start = time.perf_counter()
        times = []
        for _ in range(steps):
            time.sleep(STEP_S)
            for zone, uj in self.STEP_UJ:
                add_uj(root, zone, uj)
            times.append(time.perf_counter())
        return [
            Generation(len(p.token_ids), steps, t_start, list(times), "x" * steps) for p in prompts
        ]
