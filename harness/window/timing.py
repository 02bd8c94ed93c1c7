"""Per-step token timestamps taken from inside ``generate()``.

``transformers`` calls a streamer's ``put(value)`` once with the prompt ids and then once per
decoding step with that step's new token of every sequence (shape ``[batch]``), and ``end()`` when
generation stops. :class:`TokenTimestampStreamer` records ``time.perf_counter()`` at each step, so
one timestamp is shared by every sequence of a static batch: the step is when their tokens exist.

The work per step is one clock read and a list append (plus a device synchronisation on CUDA,
where ``generate`` already synchronises every step to test for EOS), so it costs nothing
measurable next to a forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

try:  # generate() duck-types streamers (put/end); subclass the real base where it is installed
    from transformers.generation.streamers import BaseStreamer
except ImportError:  # pragma: no cover - keeps this module importable without transformers
    BaseStreamer = object  # type: ignore[assignment,misc]


class TokenTimestampStreamer(BaseStreamer):
    """Records when each decoding step's tokens became available on the host.

    ``clock`` is the time source (``time.perf_counter`` by default; tests pass a fake clock).
    ``synchronize`` is called before the clock is read, e.g. ``torch.cuda.synchronize`` so the
    timestamp is taken when the token really exists, not when its kernel was queued.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        synchronize: Callable[[], Any] | None = None,
    ) -> None:
        self._clock = clock
        self._synchronize = synchronize
        self.prompt_seen = False
        self.step_times: list[float] = []
        self.ended = False
        self.t_end: float | None = None

    def put(self, value: Any) -> None:
        """Called by ``generate``: first with the prompt ids, then once per decoding step."""
        if not self.prompt_seen:
            # The first call carries the (padded) prompt, which is not an output token.
            self.prompt_seen = True
            return
        if self._synchronize is not None:
            self._synchronize()
        self.step_times.append(self._clock())

    def end(self) -> None:
        """Called by ``generate`` once generation has finished."""
        self.ended = True
        self.t_end = self._clock()

    @property
    def steps(self) -> int:
        """Number of decoding steps seen so far."""
        return len(self.step_times)


def count_output_tokens(
    generated: list[int], eos_ids: set[int] | frozenset[int], exact: bool
) -> int:
    """Tokens a request really produced from one row of generated ids.

    Counts up to and including the first EOS; after it, ``generate`` only pads finished rows.
    With ``exact`` EOS was suppressed, so every generated id counts.
    """
    if not exact:
        for i, token in enumerate(generated):
            if token in eos_ids:
                return i + 1
    return len(generated)
