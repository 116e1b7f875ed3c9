"""One limiter shared by every request to a provider.

Gates, taken in this order for each attempt:

- **in flight**: at most ``limit`` requests at once. ``limit`` starts at ``concurrency``
  and follows AIMD: a 429 that shows an exhausted bucket (see ``ratelimits``) halves it,
  and so does a timed-out request to a self-hosted server (``on_overloaded``), once per
  window: refusals of requests started before the cut do not cut again. A stray 429 (a
  bucket not exhausted, or no headers to say) only nudges it down by one, once per
  window. Every ``recover_after`` successes (default: the current limit, i.e. about one
  window) it grows by one, back up to ``concurrency``.
- **requests per minute**: evenly spaced starts (GCRA, a token bucket kept as one
  "theoretical arrival time"), aimed ``RPM_HEADROOM`` below the configured rpm with a
  burst of only half of what that headroom absorbs within one second. Providers count their
  window at *arrival*, and starts exactly at the limit (the old "ceil(rpm/60) starts
  every second") turn a few ms of network jitter at the window's edge into 429s; a
  small margin costs ~3 % of the limit and removes them. Providers that quantize the
  limit (1,200 rpm enforced as 20 per second) see at most rpm/60 starts in any second.
  Without a configured rpm, the provider's own ``x-ratelimit-limit-requests`` (or
  Anthropic's) sets it, from the first reply that carries it (``observe``).
- **pause**: an exhausted bucket stops every start (also those already queued for a
  pacing slot inside the pause) until it refills: the 429's Retry-After, else the
  bucket's reset, else (a 429 that names a spent limit and nothing more)
  ``BLIND_PAUSE_S``, doubled for each window refused again, up to ``BLIND_PAUSE_MAX_S``,
  until a request started after it is answered. A reply whose headers
  show fewer requests remaining than have been sent and not answered, or no tokens
  remaining, pauses the same way before any 429 comes. A pause of ``PAUSE_LOGGED_S``
  or more is logged (a daily bucket spent pauses for hours: the log says so). After a
  pause, starts resume one pacing step apart (no burst), or, without an rpm, spread over
  up to ``RESTART_SPREAD_S`` seconds, so they do not come back as one thundering herd.
  A stray 429 pauses nothing: only its own request waits its Retry-After (the provider's
  retry loop does that).
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
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agentflow_jobs.providers.ratelimits import Bucket, RateHeaders

__all__ = [
    "BLIND_PAUSE_MAX_S", "BLIND_PAUSE_S", "PAUSE_LOGGED_S", "RESTART_SPREAD_S", "RPM_HEADROOM",
    "Limiter", "Permit",
]

# aim this far below the configured requests per minute: jitter between our clock and
# the provider's window edge must not cost a 429 (3 % of 1,200 rpm is 18 per 30 s)
RPM_HEADROOM = 0.03
# without an rpm setting, the starts held by a Retry-After resume spread over this long
RESTART_SPREAD_S = 1.0
# a spent bucket that does not say when it refills: pause this long, doubling while it
# stays spent (a per-minute bucket refills within a minute)
BLIND_PAUSE_S, BLIND_PAUSE_MAX_S = 1.0, 32.0
# a pause this long is said in the log: a run that stops sending must say why
PAUSE_LOGGED_S = 5.0

log = structlog.get_logger(__name__)


@dataclass
class Permit:
    """One admitted attempt: what it reserved, and its start's number (its AIMD window)."""

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
        rpm_headroom: float = RPM_HEADROOM,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.max_concurrency = concurrency
        self.limit = concurrency
        self.in_flight = 0  # holding a place (some still waiting for their start)
        self.sent = 0  # started and not yet answered: what the provider is counting
        self.recover_after = recover_after
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._starts = 0  # attempts admitted so far: a permit's epoch is its number
        self._cut_at = self._nudged_at = 0  # the starts before the last cut / nudge
        self._blind_at, self._blind_pause = 0, 0.0  # the last pause no header timed
        self._successes = 0
        self._paused_until = 0.0
        self.requests_per_minute = requests_per_minute
        # without a configured rpm, the provider's headers may set one (observe)
        self._learn_rpm = not requests_per_minute
        self._headroom, self._burst_setting = rpm_headroom, burst
        self._set_rpm(requests_per_minute)
        self._tat = 0.0  # GCRA: when the next start is due if no burst is used
        self._spread_interval = 0.0
        self._spread_until = 0.0
        self.tokens_per_minute = tokens_per_minute
        self._tokens = float(tokens_per_minute or 0)
        self._tokens_at = clock()

    def slot(self, tokens: int = 0) -> _Slot:
        """Hold a place for one attempt (``async with``); ``settle`` the permit with the
        real usage."""
        return _Slot(self, tokens)

    async def _admit(self, tokens: int) -> Permit:
        """Wait for every gate; the caller holds an in-flight place already."""
        if self._interval or self._paused_until or self._spread_until:
            await self._pace_requests()
        if self.tokens_per_minute:
            tokens = await self._take_tokens(tokens)
        else:
            tokens = 0
        self._starts += 1
        self.sent += 1
        return Permit(tokens=tokens, epoch=self._starts)

    def _set_rpm(self, rpm: float | None) -> None:
        self._interval, self._burst = _pacing(rpm, self._headroom, self._burst_setting)
        self._tolerance = (self._burst - 1) * self._interval

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

    def on_success(self, permit: Permit | None = None) -> None:
        """An answer. A request started after the last blind pause being answered says
        the bucket refilled; answers to those started before it say nothing."""
        if self._blind_pause and (permit is None or permit.epoch > self._blind_at):
            self._blind_pause = 0.0
        if self.limit >= self.max_concurrency:
            return
        self._successes += 1
        if self._successes >= (self.recover_after or self.limit):
            self._successes = 0
            self.limit += 1
            self._wake()

    def on_rate_limited(
        self, permit: Permit | None = None, retry_after: float | None = None, *, exhausted: bool = True
    ) -> None:
        """A 429. An exhausted bucket halves the limit once per window and pauses new
        starts for ``retry_after`` (else a blind pause); a stray one only nudges the limit
        down by one."""
        if not exhausted:
            if permit is None or permit.epoch > self._nudged_at:
                self._nudged_at = self._starts
                self.limit = max(1, self.limit - 1)
            return
        self.on_overloaded(permit)
        if retry_after is None:
            retry_after = self._blind_wait(permit)
        if retry_after:
            self._pause_for(retry_after)

    def _blind_wait(self, permit: Permit | None) -> float:
        """The pause for a spent bucket that says nothing of its refill: doubled once per
        window refused (the refusals of requests started before it do not double it)."""
        if permit is None or permit.epoch > self._blind_at:
            self._blind_at = self._starts
            self._blind_pause = min(BLIND_PAUSE_MAX_S, 2 * self._blind_pause or BLIND_PAUSE_S)
        return self._blind_pause

    def on_overloaded(self, permit: Permit | None = None) -> None:
        """The server cannot keep up (an exhausted bucket, a self-hosted server timing
        out): halve the limit, once per window."""
        if permit is None or permit.epoch > self._cut_at:
            self._cut_at = self._starts
            self._successes = 0
            self.limit = max(1, self.limit // 2)

    def observe(self, rates: RateHeaders) -> None:
        """A reply's rate-limit headers: learn the rpm when none was configured, and
        pause before a bucket runs dry rather than after its 429s."""
        requests, tokens = rates
        if requests is not None:
            if self._learn_rpm and requests.limit and requests.limit != self.requests_per_minute:
                self.requests_per_minute = requests.limit
                self._set_rpm(requests.limit)
            # the other requests sent may each take one of what remains (those still
            # waiting for their start are paced anyway)
            self._hold(requests, needed=self.sent)
        if tokens is not None:
            self._hold(tokens, needed=1)

    def _hold(self, bucket: Bucket, *, needed: float) -> None:
        limit, remaining, reset_s = bucket
        if remaining is None or remaining >= needed:
            return
        wait = reset_s
        if limit and remaining > 0:  # refilling at limit/60 per second
            refill = (needed - remaining) * 60.0 / limit
            wait = refill if wait is None else min(wait, refill)
        if wait:
            self._pause_for(wait, why="its rate-limit headers show too little left")

    def _pause_for(self, seconds: float, why: str = "it answered 429, its limit spent") -> None:
        until = self._clock() + seconds
        if until <= self._paused_until:
            return
        if seconds >= PAUSE_LOGGED_S and until > self._paused_until + PAUSE_LOGGED_S:
            log.warning("requests to the provider paused", seconds=round(seconds), why=why)
        self._paused_until = until
        # no burst after the pause: the first start at its end, the next a step later
        self._tat = max(self._tat, until + self._tolerance)
        spread = min(seconds, RESTART_SPREAD_S)
        self._spread_interval = spread / max(1, self.limit)
        self._spread_until = until + spread

    # ---- requests per minute and pauses ----------------------------------------------

    async def _pace_requests(self) -> None:
        while True:
            now = self._clock()
            start = self._reserve(now)
            if start <= now:
                return
            await asyncio.sleep(start - now)
            # a 429 that arrived while we waited may have paused past our slot: queue again
            if self._clock() >= self._paused_until:
                return

    def _reserve(self, now: float) -> float:
        """This start's time, taken now so that concurrent callers queue behind it."""
        start = max(now, self._paused_until)
        interval = self._interval
        if not interval and start < self._spread_until:
            interval = self._spread_interval
        if not interval:
            return start
        due = max(self._tat, start)
        self._tat = due + interval
        return max(start, due - self._tolerance)

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


class _Slot:
    """``Limiter.slot``'s context manager: a plain class, as it runs once per request
    (a generator-based one costs several µs more each time)."""

    __slots__ = ("_limiter", "_sent", "_tokens")

    def __init__(self, limiter: Limiter, tokens: int) -> None:
        self._limiter = limiter
        self._tokens = tokens
        self._sent = False

    async def __aenter__(self) -> Permit:
        limiter = self._limiter
        await limiter._enter()
        try:
            permit = await limiter._admit(self._tokens)
        except BaseException:
            limiter._leave()
            raise
        self._sent = True
        return permit

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sent:
            self._limiter.sent -= 1
        self._limiter._leave()


def _pacing(rpm: float | None, headroom: float, burst: int | None) -> tuple[float, int]:
    """Seconds between starts and the burst allowed, for ``rpm`` less ``headroom``."""
    if not rpm or rpm <= 0:
        return 0.0, 1
    if not 0.0 <= headroom < 1.0:
        raise ValueError("rpm_headroom must be in [0, 1)")
    if burst is None:
        # half of what the headroom leaves free within one second: no second sees more
        # than rpm/60 starts, with half the headroom left for jitter (1 at 1,200 rpm)
        burst = 1 + math.floor(headroom * rpm / 120.0)
    return 60.0 / (rpm * (1.0 - headroom)), max(1, burst)
