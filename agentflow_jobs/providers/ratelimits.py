"""What a provider says about its own rate limits, read from its reply headers and 429s.

Two header families are read, on every reply (answered or refused):

- OpenAI and most compatibles (Groq, Together, vLLM gateways, LiteLLM):
  ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
  ``x-ratelimit-reset-requests`` and the same three for ``-tokens``; a reset is a
  duration (``1s``, ``6m0s``, ``20ms``) or a number of seconds;
- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
  {limit,remaining,reset}``, the reset an RFC 3339 time.

Both count per minute. ``read_headers`` turns them into one ``RateHeaders`` (``None``
when the reply carries none, which is the common case and costs two lookups).

``is_exhausted`` decides what a 429 means, which decides what the limiter does about
it: a bucket the headers show at zero, or a body that names a spent limit ("Rate limit
reached for requests", "exceeded your per-minute rate limit", a quota), is an
*exhausted bucket*: every start waits. Any other 429 (an overloaded server turning some
requests away, a gateway's hiccup) is a *stray*: only that request waits its
Retry-After.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import NamedTuple

__all__ = ["Bucket", "RateHeaders", "is_exhausted", "parse_reset", "read_headers"]

_OPENAI = "x-ratelimit-{field}-{kind}"
_ANTHROPIC = "anthropic-ratelimit-{kind}-{field}"
_ANTHROPIC_TOKEN_KINDS = ("tokens", "input-tokens", "output-tokens")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# A 429 body that names a spent limit. OpenAI: "Rate limit reached for gpt-4o in
# organization ... on requests per min (RPM): Limit 500, Used 500, Requested 1";
# Anthropic: "Number of request tokens has exceeded your per-minute rate limit";
# Azure: "Requests to the ... have exceeded token rate limit"; a spent quota.
_SPENT = re.compile(
    r"rate limit (?:reached|exceeded)|exceeded (?:your |the )?(?:\S+ )?(?:rate )?limit"
    r"|per[- ]min(?:ute)?\b|\b[rt]pm\b|\b[rt]pd\b|quota|limit \d+, used \d+"
)


class Bucket(NamedTuple):
    """One limit as the provider reports it: size per minute, what is left, when it refills."""

    limit: float | None
    remaining: float | None
    reset_s: float | None

    @property
    def empty(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


class RateHeaders(NamedTuple):
    """The request and token buckets a reply's headers describe (either may be unknown)."""

    requests: Bucket | None
    tokens: Bucket | None

    @property
    def exhausted(self) -> bool:
        return any(b is not None and b.empty for b in self)

    def reset_s(self) -> float | None:
        """Seconds until the emptied buckets refill (the longest), if they say."""
        waits = [b.reset_s for b in self if b is not None and b.empty and b.reset_s is not None]
        return max(waits) if waits else None


def read_headers(headers: Mapping[str, str]) -> RateHeaders | None:
    """The rate-limit buckets in ``headers``, or None when they carry none."""
    if "x-ratelimit-remaining-requests" in headers or "x-ratelimit-remaining-tokens" in headers:
        return RateHeaders(_openai(headers, "requests"), _openai(headers, "tokens"))
    if "anthropic-ratelimit-requests-remaining" in headers or \
            "anthropic-ratelimit-tokens-remaining" in headers or \
            "anthropic-ratelimit-input-tokens-remaining" in headers:
        tokens = [_anthropic(headers, kind) for kind in _ANTHROPIC_TOKEN_KINDS]
        known = [b for b in tokens if b is not None]
        # the tightest token bucket is the one that binds
        tightest = min(known, key=lambda b: b.remaining if b.remaining is not None else float("inf"),
                       default=None)
        return RateHeaders(_anthropic(headers, "requests"), tightest)
    return None


def is_exhausted(rates: RateHeaders | None, body: str) -> bool:
    """Whether a 429 says a bucket is spent (pause every start) rather than a stray."""
    if rates is not None and rates.exhausted:
        return True
    return bool(_SPENT.search(body.lower()))


def parse_reset(value: str | None) -> float | None:
    """Seconds in ``1s``, ``6m0s``, ``20ms``, ``1.5`` or an RFC 3339 time; None if unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _openai(headers: Mapping[str, str], kind: str) -> Bucket | None:
    return _bucket(headers, lambda field: _OPENAI.format(field=field, kind=kind))


def _anthropic(headers: Mapping[str, str], kind: str) -> Bucket | None:
    return _bucket(headers, lambda field: _ANTHROPIC.format(field=field, kind=kind))


def _bucket(headers: Mapping[str, str], name: Callable[[str], str]) -> Bucket | None:
    limit = _number(headers.get(name("limit")))
    remaining = _number(headers.get(name("remaining")))
    if limit is None and remaining is None:
        return None
    return Bucket(limit, remaining, parse_reset(headers.get(name("reset"))))
