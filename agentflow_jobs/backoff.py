"""When to try again: the one retry policy type, each caller configuring its own.

A ``RetryPolicy`` says how many attempts a call gets and how long to wait after a
failed one. The wait is the server's Retry-After when it gave one (capped at
``max_retry_after``: a server asking for longer is asking too much for one item), else
the backoff step for that attempt — ``base_delay`` doubling per attempt up to
``max_delay``, or a fixed ``schedule`` of steps — waited whole, or with full jitter (a
uniform draw between 0 and the step, so many clients backing off together spread out).

The three callers and their numbers:

- the OpenAI-compatible provider: 3 attempts, steps 0.5 s doubling to 20 s with full
  jitter, Retry-After honoured up to 60 s;
- the engine's executor, for errors a provider left to it: steps 1 s doubling to 30 s
  with full jitter, Retry-After honoured up to 30 s;
- the SDK's HTTP transport, for a connection that could not be made: fixed steps of
  0.2, 0.5 and 1 s, no jitter (a service has no Retry-After for a refused connection).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and how long to wait between them."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    # a server asking for longer than this is asking too much for one item
    max_retry_after: float = 60.0
    # fixed steps, one per failed attempt (the last repeats); replaces the doubling
    schedule: tuple[float, ...] = ()
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after)
        step = self.step(attempt)
        return self.rng.uniform(0.0, step) if self.jitter else step

    def step(self, attempt: int) -> float:
        """The backoff step after failed attempt ``attempt``: the longest jittered wait."""
        if self.schedule:
            return self.schedule[min(max(attempt, 1), len(self.schedule)) - 1]
        return min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
