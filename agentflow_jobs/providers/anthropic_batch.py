"""Anthropic's Message Batches behind the ``BatchAPI`` seam (``batch_api``).

``POST /v1/messages/batches`` carries the lines itself (``upload`` returns None): each is
``{"custom_id", "params"}`` where ``params`` is exactly the body the sync provider sends
(``anthropic_request.message_body``). Up to 100,000 requests and 256 MB per batch
(``DEFAULT_LIMITS``, a little under, for the envelope). ``GET .../{id}`` reads the state:
``in_progress`` → phase ``running``, ``canceling`` → ``ending``, ``ended`` → ``ended``.
Results are the ``results_url`` JSONL, in any order: ``succeeded`` lines carry a Message
(read like a sync reply, and paid); ``errored``, ``canceled`` and ``expired`` lines are
not billed by Anthropic, so they are unpaid outcomes the engine sends again later.
``RemoteBatch.expires_at`` is when Anthropic drops the results (29 days after creation;
also ``raw["results_until"]``, which ``status`` shows as such); the processing deadline
(24 h) is ``raw["processing_expires_at"]``.

Finding a batch again (``find``). Anthropic batches carry no metadata, so a batch created
just before a crash, before its id was recorded, is found this way:

- every wire ``custom_id`` is ``<tag>_<custom_id>``, the tag 12 hex digits of a hash of
  the chunk's metadata (stripped again in ``results``): once a batch has ended, the first
  line of its results says whose it is, for certain;
- a batch still running shows only its creation time and request count. With
  ``agentflow_intent_at`` (epoch seconds of the intent) and ``agentflow_lines`` in the
  metadata, the one running batch created since the intent (less ``CLOCK_SKEW_S``) with
  that many requests, and not already recorded for another chunk (``find``'s ``taken``,
  from the engine's records), is taken; ``results`` checks the tags when it ends and refuses a batch
  that turns out to be someone else's (another job's of the same size, created in the
  same minutes in the same Anthropic workspace);
- when running batches cannot be told apart (two candidates, or metadata without those
  keys), ``find`` raises a retryable ``ProviderError``: the engine looks again later,
  and by the time the candidates end their results decide. Slow at worst, never a second
  batch for a chunk.

The trade-off: a listing is paged newest first and stops at the intent time, so the cost
is one or two list calls, plus one results line per ended candidate of the right size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.errors import ProviderError
from agentflow_jobs.providers.anthropic_reply import ANY_TOOL, message_reply
from agentflow_jobs.providers.anthropic_request import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    MessageBodies,
)
from agentflow_jobs.providers.batch_api import (
    BatchLimits,
    BatchLine,
    BatchPhase,
    LineOutcome,
    RemoteBatch,
    json_line,
)
from agentflow_jobs.providers.failures import status_failure, transport_failure
from agentflow_jobs.urls import display_url

__all__ = ["CLOCK_SKEW_S", "DEFAULT_LIMITS", "RESULTS_RETENTION_S", "AnthropicBatchAPI", "outcome_of"]

# 100,000 requests; 256 MB less room for the envelope, whether MB means 10^6 or 2^20
DEFAULT_LIMITS = BatchLimits(max_requests=100_000, max_bytes=250_000_000)
RESULTS_RETENTION_S = 29 * 86_400.0
# how far Anthropic's clock (created_at) may be behind ours (the recorded intent time)
CLOCK_SKEW_S = 600.0
_TAG_CHARS = 12
_PHASES: dict[str, BatchPhase] = {"in_progress": "running", "canceling": "ending", "ended": "ended"}
_CODES = {"invalid_request_error": "bad_request", "authentication_error": "auth", "permission_error": "auth",
          "not_found_error": "bad_request", "request_too_large": "bad_request", "rate_limit_error": "rate_limited",
          "overloaded_error": "provider_error", "api_error": "provider_error"}
_TRANSPORT_ERRORS = (httpx.TransportError, OSError, TimeoutError)
# answers that say a request was turned away before anything was made
_NOT_PROCESSED = frozenset({429, 529})
T = TypeVar("T")


def tag_of(metadata: Mapping[str, str]) -> str:
    """The chunk's tag in its wire custom_ids (see the module doc)."""
    text = json.dumps(sorted((str(k), str(v)) for k, v in metadata.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:_TAG_CHARS]


class AnthropicBatchAPI:
    """Message Batches over HTTP (see the module doc); errors are ``ProviderError``."""

    name = "anthropic"

    def __init__(self, base_url: str, api_key: str | None, model: str | None, *,
                 max_tokens: int = DEFAULT_MAX_TOKENS, native: bool = False,
                 headers: Mapping[str, str] | None = None,
                 limits: BatchLimits = DEFAULT_LIMITS, timeout: float = 300.0,
                 retry: RetryPolicy | None = None) -> None:
        self.root = base_url.rstrip("/").removesuffix("/v1")
        self.model, self.max_tokens, self.native, self.limits = model, max_tokens, native, limits
        self._bodies = MessageBodies(model, max_tokens, native=native)
        self.retry = retry or RetryPolicy(max_attempts=5)
        self._key = api_key or None
        self._where = f"provider {display_url(self.root)} (message batches)"
        sent = {"anthropic-version": ANTHROPIC_VERSION, "user-agent": "agentflow-jobs", **(headers or {})}
        if self._key:
            sent["x-api-key"] = self._key
        self._http = httpx.AsyncClient(base_url=self.root, headers=sent, timeout=timeout, follow_redirects=False)

    def __repr__(self) -> str:  # never shows the key
        return f"AnthropicBatchAPI(base_url={display_url(self.root)!r}, model={self.model!r})"

    # ---- the lines ------------------------------------------------------------------

    def _line(self, line: BatchLine, tag: str) -> bytes:
        wire_id = f"{tag}_{line.custom_id}"
        if len(wire_id) > 64:
            raise ValueError(f"custom_id {line.custom_id!r} is too long for a tagged Anthropic custom_id")
        params = self._bodies.encode(self._bodies.payload(line.chat))
        return b'{"custom_id": "' + wire_id.encode() + b'", "params": ' + params + b"}"

    def line_bytes(self, line: BatchLine) -> int:
        return len(self._line(line, "0" * _TAG_CHARS)) + 1  # and its comma

    async def upload(self, lines: Sequence[BatchLine]) -> str | None:
        return None  # the create request carries the lines

    async def create(self, lines: Sequence[BatchLine], upload_id: str | None,
                     metadata: Mapping[str, str]) -> RemoteBatch:
        tag = tag_of(metadata)
        body = b'{"requests": [' + b", ".join(self._line(line, tag) for line in lines) + b"]}"
        # sent again here only when the API certainly made nothing (429, 529 overloaded);
        # after a 5xx or a broken connection the batch may exist: the error goes to the
        # engine, which looks for it (find) before it creates again
        data = await self._retried(lambda: self._once("POST", "/v1/messages/batches", content=body),
                                   only=_NOT_PROCESSED)
        return self._batch(data, metadata)

    # ---- the batch ------------------------------------------------------------------

    async def retrieve(self, batch_id: str) -> RemoteBatch:
        return self._batch(await self._call("GET", f"/v1/messages/batches/{batch_id}"), {})

    async def cancel(self, batch_id: str) -> RemoteBatch:
        return self._batch(await self._call("POST", f"/v1/messages/batches/{batch_id}/cancel"), {})

    async def discard(self, batch: RemoteBatch, upload_id: str | None) -> None:
        return None  # no files; the batch and its results stay readable for their 29 days

    def _batch(self, data: Any, metadata: Mapping[str, str]) -> RemoteBatch:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ProviderError(f"{self._where} sent a batch without an id", code="provider_error",
                                retryable=True)
        counts = _mapping(data.get("request_counts"))
        number = {k: _int(counts.get(k)) for k in ("processing", "succeeded", "errored", "canceled", "expired")}
        status = str(data.get("processing_status") or "")
        if status == "ended" and data.get("cancel_initiated_at"):
            status = "canceled"  # how it ended, for status: Anthropic says only "ended"
        elif status == "ended" and number["expired"]:
            status = "expired"
        created = _epoch(data.get("created_at"))
        until = None if created is None else created + RESULTS_RETENTION_S
        raw = {"results_url": data.get("results_url"), "created_at": created, "results_until": until,
               "processing_expires_at": _epoch(data.get("expires_at")),
               "ended_at": _epoch(data.get("ended_at")), "archived_at": _epoch(data.get("archived_at"))}
        return RemoteBatch(
            id=data["id"], phase=_PHASES.get(str(data.get("processing_status")), "running"), status=status,
            total=sum(number.values()),
            succeeded=number["succeeded"], failed=number["errored"] + number["canceled"] + number["expired"],
            expires_at=until,
            metadata=dict(metadata), raw=raw,
        )

    # ---- results --------------------------------------------------------------------

    async def results(self, batch: RemoteBatch) -> AsyncIterator[LineOutcome]:
        tag = tag_of(batch.metadata) if batch.metadata else None
        async for line in self._result_lines(batch):
            outcome = outcome_of(line, tag, where=f"{self._where} batch {batch.id}")
            if outcome is not None:
                yield outcome

    async def _result_lines(self, batch: RemoteBatch) -> AsyncGenerator[dict[str, Any], None]:
        url, yielded = self._results_url(batch), 0
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                async with self._http.stream("GET", url) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise self._failure(response)
                    async for text in response.aiter_lines():
                        decoded = json_line(text)
                        if decoded is not None:
                            yielded += 1
                            yield decoded
                    return
            except _TRANSPORT_ERRORS as exc:
                error = transport_failure(exc, where=self._where, secret=self._key)
            except ProviderError as exc:
                error = exc
            # a read that broke off mid-way is the engine's to start again (it skips the
            # lines it recorded); only a read that gave nothing is retried here
            if yielded or not error.retryable or attempt >= self.retry.max_attempts:
                raise error
            await asyncio.sleep(self.retry.delay(attempt, error.retry_after))

    def _results_url(self, batch: RemoteBatch) -> str:
        """The batch's results_url when it is on the API's own host (the key is sent to
        no other), else the documented path."""
        given = batch.raw.get("results_url")
        path = f"/v1/messages/batches/{batch.id}/results"
        if isinstance(given, str) and given:
            here, there = urlsplit(self.root), urlsplit(given)
            if (there.scheme, there.netloc) == (here.scheme, here.netloc):
                return there.path or path
        return path

    # ---- find -----------------------------------------------------------------------

    async def find(
        self, metadata: Mapping[str, str], taken: Callable[[str], bool] | None = None
    ) -> RemoteBatch | None:
        lines = _optional_number(metadata.get("agentflow_lines"))
        since = _optional_number(metadata.get("agentflow_intent_at"))
        floor = (since - CLOCK_SKEW_S) if since is not None else None
        tag, running = tag_of(metadata), []
        async for listed in self._listing(floor):
            batch = self._batch(listed, metadata)
            if (lines is not None and batch.total != int(lines)) or (taken is not None and taken(batch.id)):
                continue
            if batch.phase != "ended":
                running.append(batch)
            elif await self._first_tag(batch) == tag:
                return batch
        if not running:
            return None
        if len(running) == 1 and lines is not None and since is not None:
            return running[0]
        raise ProviderError(
            f"{self._where}: {len(running)} running batch(es) may be this chunk's and cannot be told "
            "apart before they end (Anthropic batches carry no metadata); looking again later",
            code="provider_error", retryable=True)

    async def _listing(self, floor: float | None) -> AsyncIterator[dict[str, Any]]:
        """Batches newest first, down to ``floor`` (epoch s; else the results' retention)."""
        after: str | None = None
        floor = floor if floor is not None else time.time() - RESULTS_RETENTION_S
        while True:
            params = {"limit": "100", **({"after_id": after} if after else {})}
            page = await self._call("GET", "/v1/messages/batches", params=params)
            data = [d for d in page.get("data") or [] if isinstance(d, dict)] if isinstance(page, dict) else []
            for listed in data:
                created = _epoch(listed.get("created_at"))
                if created is not None and created < floor:
                    return
                yield listed
            if not data or not page.get("has_more"):
                return
            after = str(data[-1].get("id"))

    async def _first_tag(self, batch: RemoteBatch) -> str | None:
        if not batch.raw.get("results_url") or batch.raw.get("archived_at"):
            return None
        async with contextlib.aclosing(self._result_lines(batch)) as lines:
            async for line in lines:
                return str(line.get("custom_id") or "")[:_TAG_CHARS]
        return None

    # ---- HTTP -----------------------------------------------------------------------

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        """One control call, retried like a chat request (Retry-After, 429, 529, 5xx)."""
        return await self._retried(lambda: self._once(method, path, **options))

    async def _retried(self, call: Callable[[], Awaitable[T]], only: frozenset[int] | None = None) -> T:
        """``call`` with retries; ``only``: retry just these statuses."""
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                return await call()
            except ProviderError as error:
                unsafe = only is not None and error.status_code not in only
                if unsafe or not error.retryable or attempt >= self.retry.max_attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, error.retry_after))
        raise AssertionError("unreachable")

    async def _once(self, method: str, path: str, **options: Any) -> Any:
        if "content" in options:
            options.setdefault("headers", {})["content-type"] = "application/json"
        try:
            response = await self._http.request(method, path, **options)
        except _TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, where=self._where, secret=self._key) from None
        if response.status_code >= 400:
            raise self._failure(response)
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"{self._where} sent a reply that is not JSON", code="provider_error",
                                status_code=response.status_code, retryable=True) from None

    def _failure(self, response: httpx.Response) -> ProviderError:
        return status_failure(response.status_code, response.text, response.headers,
                              where=self._where, secret=self._key)

    async def aclose(self) -> None:
        await self._http.aclose()


def outcome_of(line: Mapping[str, Any], tag: str | None, *, where: str = "provider") -> LineOutcome | None:
    """One results line as a LineOutcome (its custom_id untagged); None for a line without
    a custom_id. A line tagged for another chunk is a ProviderError: the batch is not ours."""
    wire = line.get("custom_id")
    if not isinstance(wire, str):
        return None
    head, sep, custom_id = wire.partition("_")
    if tag is not None and (not sep or head != tag):
        raise ProviderError(f"{where} holds requests of another chunk ({wire!r}); it is not this chunk's",
                            code="provider_error", retryable=False)
    custom_id = custom_id if sep and len(head) == _TAG_CHARS else wire
    result = _mapping(line.get("result"))
    kind = result.get("type")
    if kind == "succeeded":
        reply = message_reply(result.get("message"), ANY_TOOL)
        if reply is not None:
            return LineOutcome(custom_id, reply=reply, paid=True)
        return LineOutcome(custom_id, code="provider_error", message="a succeeded line without a message")
    if kind == "errored":
        error = _mapping(result.get("error"))
        inner = _mapping(error.get("error")) or error
        code = _CODES.get(str(inner.get("type")), "provider_error")
        return LineOutcome(custom_id, code=code, message=str(inner.get("message") or inner.get("type") or kind))
    if kind in ("canceled", "expired"):
        return LineOutcome(custom_id, code=str(kind), message=f"the request was {kind} before it ran")
    return LineOutcome(custom_id, code="provider_error", message=f"unknown result type {kind!r}")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _optional_number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
