"""A failed provider call as a ``ProviderError``: what is retryable, what to report.

Providers only send; this module turns an HTTP error status, an unusable 200 reply or a
transport exception into a ``ProviderError`` with its per-item ``code``, whether it is
``retryable``, and the server's ``retry_after`` (``retry-after-ms`` or ``Retry-After``).
Bodies quoted in messages are redacted (``log.redact``) before they are cut. How long
to wait before the next attempt is the provider's ``backoff.RetryPolicy``.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import re
import time
from collections.abc import Mapping

import httpx

from agentflow_jobs.errors import ProviderError
from agentflow_jobs.log import redact

__all__ = [
    "code_for_status",
    "gave_up",
    "is_retryable_status",
    "malformed_failure",
    "parse_retry_after",
    "status_failure",
    "transport_failure",
]

# 408 request timeout, 409 conflict (lock contention at some gateways), 429 rate limit
RETRYABLE_4XX = frozenset({408, 409, 429})
# An account with nothing left to spend: OpenAI's 429 whose error type or code is
# ``insufficient_quota``, Anthropic's 400 "Your credit balance is too low", a gateway's
# 402. Unlike a rate limit, waiting does not refill it: every other item would be refused
# alike. Decided by the error's own fields, never by words anywhere in the body (a
# validation error may quote the prompt; Gemini words its per-minute limit "You exceeded
# your current quota, please check your plan and billing details ... Please retry in
# 15s"), and never for an answer with a Retry-After (it says when to come back).
_NO_CREDIT = re.compile(r"credit balance is too low|insufficient credits?", re.IGNORECASE)
_NO_CREDIT_HINT = ("the account has no quota or credit left: nothing more is sent and no item "
                  "is recorded as failed; add credit, then apply again")
EXCERPT_CHARS = 200
# the provider's own error message is what tells a user what to fix: keep more of it
MESSAGE_CHARS = 600


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_4XX or status >= 500


def code_for_status(status: int) -> str:
    """The per-item error code a status becomes when we give up on it."""
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    if status == 408:
        return "timeout"
    if status >= 500 or status == 409:
        return "provider_error"
    return "bad_request"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` (OpenAI) wins over ``Retry-After`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, with no local zone to say (RFC 5322), not our local time
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())


def _excerpt(body: str, secret: str | None, limit: int = EXCERPT_CHARS) -> str:
    # Redact before cutting: a key straddling the cut would otherwise leave its prefix.
    text = " ".join(redact(body, secret).split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return text


def provider_message(body: str) -> str | None:
    """The human message inside an error body, when it has the shape APIs use:
    ``{"error": {"message": ..., "param": ...}}`` (OpenAI and most compatibles),
    ``{"error": "..."}``, ``{"detail": "..."}`` (FastAPI, vLLM) or ``{"message": "..."}``."""
    if not body.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message.strip():
        param = error.get("param") if isinstance(error, dict) else None
        return message + (f" (param: {param})" if isinstance(param, str) and param else "")
    for value in (error, data.get("detail"), data.get("message")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def status_failure(
    status: int, body: str, headers: Mapping[str, str], *, where: str, secret: str | None
) -> ProviderError:
    """A ProviderError for an HTTP error status, with the provider's own message when the
    body carries one (else a short excerpt of the body)."""
    said = provider_message(body)
    excerpt = _excerpt(said, secret, MESSAGE_CHARS) if said is not None else _excerpt(body, secret)
    message = f"{where} answered HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if 300 <= status < 400:
        message += _moved(headers, secret)
    retry_after = parse_retry_after(headers)
    if _no_credit(status, body, said, retry_after):
        return ProviderError(f"{message} ({_NO_CREDIT_HINT})", code="insufficient_quota",
                             status_code=status)
    return ProviderError(
        message,
        code=code_for_status(status),
        status_code=status,
        retry_after=retry_after,
        retryable=is_retryable_status(status),
    )


def _moved(headers: Mapping[str, str], secret: str | None) -> str:
    """What a redirect says: where to, and the setting that points there (it is not
    followed: the request would lose its body or its key on the way)."""
    location = headers.get("location")
    where = f" to {_excerpt(location, secret, MESSAGE_CHARS)}" if location else ""
    return f" (a redirect{where}: set provider.base_url to the address it names)"


def _no_credit(status: int, body: str, said: str | None, retry_after: float | None) -> bool:
    """Whether an error answer says the account has nothing left to spend (see ``_NO_CREDIT``)."""
    if status == 402:
        return True
    if not 400 <= status < 500 or retry_after is not None:
        return False
    return _typed_insufficient_quota(body) or bool(said and _NO_CREDIT.search(said))


def _typed_insufficient_quota(body: str) -> bool:
    """Whether the body's ``error`` object has ``insufficient_quota`` as its type or code."""
    if "insufficient_quota" not in body:
        return False
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    error = data.get("error") if isinstance(data, dict) else None
    return isinstance(error, dict) and "insufficient_quota" in (error.get("type"), error.get("code"))


def _is_timeout(exc: BaseException) -> bool:
    # the aiohttp transport reports a dropped connection as ConnectTimeout: a cause that is
    # a connection error says otherwise (httpx's own causes are httpcore's timeouts)
    cause = exc.__cause__
    if isinstance(exc, httpx.TimeoutException):
        return isinstance(cause, TimeoutError) or not isinstance(cause, OSError)
    return isinstance(exc, TimeoutError | asyncio.TimeoutError)


def _kind(exc: BaseException) -> str:
    """What failed, by name: the cause of an exception httpx or our transport wrapped
    (aiohttp's SocketTimeoutError, an OSError), else the exception itself (a TimeoutError,
    not the CancelledError behind it)."""
    cause = exc.__cause__
    if isinstance(exc, httpx.HTTPError) and cause is not None:
        return type(cause).__name__
    return type(exc).__name__


def transport_failure(
    exc: BaseException, *, where: str, secret: str | None, limit: str | None = None
) -> ProviderError:
    """A retryable ProviderError for a connect/read error or a timeout (``limit``: which
    limit a timeout hit, with the setting that changes it; ``Endpoint.limit_hit``)."""
    kind = _kind(exc)
    detail = redact(str(exc.__cause__ or exc), secret)[:EXCERPT_CHARS]
    if _is_timeout(exc):
        said = f"; {limit}" if limit else ""
        return ProviderError(f"{where} timed out ({kind}{said})", code="timeout", retryable=True)
    message = f"{where} connection failed ({kind}{': ' + detail if detail else ''})"
    return ProviderError(message, code="provider_error", retryable=True)


def malformed_failure(reason: str, body: str, *, where: str, secret: str | None) -> ProviderError:
    """A 200 reply we cannot use (not JSON, no choices): retried as a provider error."""
    excerpt = _excerpt(body, secret)
    message = f"{where} sent an unusable reply ({reason})" + (f": {excerpt}" if excerpt else "")
    return ProviderError(message, code="provider_error", status_code=200, retryable=True)


def gave_up(error: ProviderError, attempts: int) -> ProviderError:
    """The final error after ``attempts`` attempts, keeping code and status."""
    suffix = f" (gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
    return ProviderError(
        error.message + (suffix if error.retryable else ""),
        code=error.code,
        status_code=error.status_code,
        retry_after=error.retry_after,
        retryable=False,
        attempts=attempts,
    )
