"""One limiter shared by every request to a provider.

Three gates, taken in this order for each attempt:

- **in flight**: at most ``limit`` requests at once. ``limit`` starts at ``concurrency``
  and follows AIMD: a 429 halves it (once per window: 429s from requests started before
  the cut do not cut again), and every ``recover_after`` successes (default: the
  current limit, i.e. about one window) it grows by one, back up to ``concurrency``.
  A Retry-After also pauses new starts until it has passed.
- **requests per minute**: at most ``n`` starts in any ``window`` seconds, with
  ``n = ceil(rpm / 60)`` and ``window = 60 n / rpm`` — smooth pacing rather than a
  whole minute's burst, which is how providers enforce their limits too.
- **tokens per minute**: a token bucket (capacity one minute of tokens) from which each
  request reserves its estimated prompt tokens plus its maximum output tokens; the
  reservation is settled with the real usage when the reply arrives. A request takes its
  tokens at once and, if that leaves the bucket in debt, waits until the debt is paid,
  so waiters are served in order.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["Limiter", "Permit"]


@dataclass
class Permit:
    """One admitted attempt: what it reserved, and the AIMD window it started in."""

    tokens: int
    epoch: int
    settled: bool = False


class Limiter:
    """In-flight, requests/minute and tokens/minute limits with AIMD on 429."""

    def __init__(
        self,
        *,
        concurrency: int = 64,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        recover_after: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.max_concurrency = concurrency
        self.limit = concurrency
        self.in_flight = 0
        self.recover_after = recover_after
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._epoch = 0
        self._successes = 0
        self._paused_until = 0.0
        self._rpm_starts: deque[float] = deque()
        self._rpm_n, self._rpm_window = _rpm_window(requests_per_minute)
        self.tokens_per_minute = tokens_per_minute
        self._tokens = float(tokens_per_minute or 0)
        self._tokens_at = clock()

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[Permit]:
        """Hold a place for one attempt; ``settle`` the permit with the real usage."""
        await self._enter()
        try:
            await self._pause()
            await self._pace_requests()
            permit = Permit(tokens=await self._take_tokens(tokens), epoch=self._epoch)
            yield permit
        finally:
            self._leave()

    # ---- in flight -------------------------------------------------------------------

    async def _enter(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()  # cancelled waiters may sit ahead of us with room to spare
        try:
            await waiter  # _wake counted us in before resolving the future
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._leave()
            raise

    def _leave(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    # ---- AIMD ------------------------------------------------------------------------

    def on_success(self) -> None:
        if self.limit >= self.max_concurrency:
            return
        self._successes += 1
        if self._successes >= (self.recover_after or self.limit):
            self._successes = 0
            self.limit += 1
            self._wake()

    def on_rate_limited(self, permit: Permit | None = None, retry_after: float | None = None) -> None:
        """A 429: halve the limit once per window, and pause new starts for Retry-After."""
        if retry_after:
            self._paused_until = max(self._paused_until, self._clock() + retry_after)
        if permit is not None and permit.epoch != self._epoch:
            return
        self._epoch += 1
        self._successes = 0
        self.limit = max(1, self.limit // 2)

    async def _pause(self) -> None:
        wait = self._paused_until - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)

    # ---- requests per minute ---------------------------------------------------------

    async def _pace_requests(self) -> None:
        if not self._rpm_n:
            return
        now = self._clock()
        start = now
        if len(self._rpm_starts) >= self._rpm_n:
            start = max(now, self._rpm_starts[0] + self._rpm_window)
        # reserve the start time now, so concurrent callers queue behind it
        self._rpm_starts.append(start)
        while len(self._rpm_starts) > self._rpm_n:
            self._rpm_starts.popleft()
        if start > now:
            await asyncio.sleep(start - now)

    # ---- tokens per minute -----------------------------------------------------------

    def _refill(self) -> None:
        assert self.tokens_per_minute
        now = self._clock()
        rate = self.tokens_per_minute / 60.0
        self._tokens = min(self.tokens_per_minute, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now

    async def _take_tokens(self, tokens: int) -> int:
        if not self.tokens_per_minute or tokens <= 0:
            return 0
        # a request larger than the whole budget still goes, once the bucket is full
        tokens = min(tokens, int(self.tokens_per_minute))
        self._refill()
        self._tokens -= tokens
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / (self.tokens_per_minute / 60.0))
        return tokens

    def settle(self, permit: Permit, used_tokens: int | None) -> None:
        """Give back what a request reserved but did not use (or charge what it overran)."""
        if permit.settled or not self.tokens_per_minute or used_tokens is None:
            return
        permit.settled = True
        self._refill()
        self._tokens = min(float(self.tokens_per_minute), self._tokens + permit.tokens - used_tokens)


def _rpm_window(rpm: float | None) -> tuple[int, float]:
    if not rpm or rpm <= 0:
        return 0, 0.0
    starts = max(1, math.ceil(rpm / 60.0))
    return starts, 60.0 * starts / rpm
