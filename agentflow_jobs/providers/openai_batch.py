"""OpenAI's Batch API (and every server that copies it) as a ``batch_api.BatchAPI``.

The protocol: the request lines are uploaded as one JSONL file (``POST /files``,
``purpose=batch``), a batch is created from it (``POST /batches`` with ``endpoint:
/v1/chat/completions``, ``completion_window: 24h`` and our ``metadata``), read back
(``GET /batches/{id}``), found again by its metadata (``GET /batches?limit&after``),
cancelled (``POST /batches/{id}/cancel``); its results are two JSONL files, the output
and the error file, read with ``GET /files/{id}/content`` and deleted with ``DELETE
/files/{id}``.

Each line's ``body`` is ``RequestBodies.payload``: the very body sync mode sends.

A result line is an answer only when its ``response.status_code`` is 2xx: a line with
``error: null`` and a 4xx/5xx response (OpenAI puts those in the error file, the
failure inside ``response.body``) is a failure with the status's per-item code. Lines
the provider did not run (``batch_expired``, ``batch_cancelled``) and 429/5xx lines are
unpaid: the engine sends those items again later. A ``completed`` batch with no output
file (every line failed) has only its error file to read.

Control calls are retried here on 429/5xx/transport errors, honouring Retry-After,
except ``create``: a create that failed may still have made the batch, so the engine
looks for it by its metadata before creating again.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.errors import ProviderError
from agentflow_jobs.providers.batch_api import (
    BatchLimits,
    BatchLine,
    BatchPhase,
    LineOutcome,
    RemoteBatch,
    json_line,
)
from agentflow_jobs.providers.failures import (
    code_for_status,
    gave_up,
    provider_message,
    status_failure,
    transport_failure,
)
from agentflow_jobs.providers.openai_reply import parse_reply
from agentflow_jobs.providers.openai_request import RequestBodies
from agentflow_jobs.urls import display_url

__all__ = ["CHAT_ENDPOINT", "DEFAULT_LIMITS", "OpenAIBatchAPI", "outcome_of"]

CHAT_ENDPOINT = "/v1/chat/completions"
# OpenAI's: 50,000 requests and 200 MB per input file
DEFAULT_LIMITS = BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
_PHASES: dict[str, BatchPhase] = {
    "validating": "pending", "in_progress": "running", "finalizing": "ending",
    "cancelling": "ending", "completed": "ended", "expired": "ended", "cancelled": "ended",
    "failed": "ended",
}
# result-line error codes that mean "not run": the item is sent again later, unpaid
_NOT_RUN = {"batch_expired": "expired", "batch_cancelled": "cancelled"}
_LIST_PAGES = 50  # GET /batches pages (100 each) searched by find
_T = TypeVar("_T")


class OpenAIBatchAPI:
    """The files + batches endpoints under one ``base_url`` (e.g. ``https://api.openai.com/v1``)."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        limits: BatchLimits = DEFAULT_LIMITS,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.default_model = model
        self.limits = limits
        self.retry = retry or RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=30.0)
        self._api_key = api_key or None
        self._where = f"provider {display_url(self.base_url)} (batch API)"
        merged = {"user-agent": "agentflow-jobs", **(headers or {})}
        if self._api_key:
            merged["authorization"] = f"Bearer {self._api_key}"
        self._headers = merged
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bodies = RequestBodies()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIBatchAPI(base_url={display_url(self.base_url)!r})"

    # ---- lines ---------------------------------------------------------------------

    def encode(self, line: BatchLine) -> bytes:
        """One JSONL line of the upload, newline included."""
        body = self._bodies.encode(self._bodies.payload(line.chat, self.default_model))
        head = json.dumps({"custom_id": line.custom_id, "method": "POST", "url": CHAT_ENDPOINT})
        return head[:-1].encode() + b', "body": ' + body + b"}\n"

    def line_bytes(self, line: BatchLine) -> int:
        return len(self.encode(line))

    # ---- batches -------------------------------------------------------------------

    async def upload(self, lines: Sequence[BatchLine]) -> str | None:
        data = b"".join(self.encode(line) for line in lines)
        files = {"file": ("agentflow-batch.jsonl", data, "application/jsonl")}
        answer = await self._retried(lambda: self._call("POST", "/files", files=files, data={"purpose": "batch"}))
        file_id = answer.get("id")
        if not isinstance(file_id, str):
            raise self._unusable("the file upload answer has no id", answer)
        return file_id

    async def create(
        self, lines: Sequence[BatchLine], upload_id: str | None, metadata: Mapping[str, str]
    ) -> RemoteBatch:
        body = {"input_file_id": upload_id, "endpoint": CHAT_ENDPOINT, "completion_window": "24h",
                "metadata": dict(metadata)}
        return self._batch(await self._call("POST", "/batches", json=body))  # never retried: see doc

    async def find(
        self, metadata: Mapping[str, str], taken: Callable[[str], bool] | None = None
    ) -> RemoteBatch | None:
        # the metadata names the chunk: a batch carrying it is this chunk's, never another's
        wanted = dict(metadata)
        after: str | None = None
        for _ in range(_LIST_PAGES):
            params = {"limit": "100", **({"after": after} if after else {})}
            page = await self._retried(functools.partial(self._call, "GET", "/batches", params=params))
            data = page.get("data")
            data = data if isinstance(data, list) else []
            for raw in data:
                if isinstance(raw, dict) and raw.get("metadata") == wanted:
                    return self._batch(raw)
            if not page.get("has_more") or not data:
                return None
            after = str(data[-1].get("id"))
        return None

    async def retrieve(self, batch_id: str) -> RemoteBatch:
        return self._batch(await self._retried(lambda: self._call("GET", f"/batches/{batch_id}")))

    async def cancel(self, batch_id: str) -> RemoteBatch:
        return self._batch(await self._retried(lambda: self._call("POST", f"/batches/{batch_id}/cancel")))

    async def results(self, batch: RemoteBatch) -> AsyncIterator[LineOutcome]:
        for key in ("output_file_id", "error_file_id"):
            file_id = batch.raw.get(key)
            if file_id:
                async for line in self._lines(str(file_id)):
                    outcome = outcome_of(line)
                    if outcome is not None:
                        yield outcome

    async def discard(self, batch: RemoteBatch, upload_id: str | None) -> None:
        for file_id in (upload_id, batch.raw.get("output_file_id"), batch.raw.get("error_file_id")):
            if file_id:
                await self._retried(functools.partial(self._call, "DELETE", f"/files/{file_id}", missing_ok=True))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()

    # ---- HTTP ----------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout)
            self._loop = loop
        return self._client

    async def _call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http().request(method, self.base_url + path, **kwargs)
        except httpx.TransportError as exc:
            raise transport_failure(exc, where=self._where, secret=self._api_key) from None
        if missing_ok and response.status_code == 404:
            return {}
        if response.status_code >= 400:
            raise status_failure(response.status_code, response.text, response.headers,
                                 where=f"{self._where} {method} {path}", secret=self._api_key)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise self._unusable(f"{method} {path} did not answer a JSON object", response.text[:200])
        return answer

    async def _retried(self, call: Callable[[], Awaitable[_T]]) -> _T:
        attempt = 1
        while True:
            try:
                return await call()
            except ProviderError as exc:
                if not exc.retryable or attempt >= self.retry.max_attempts:
                    raise gave_up(exc, attempt) from None
                await asyncio.sleep(self.retry.delay(attempt, exc.retry_after))
                attempt += 1

    async def _lines(self, file_id: str) -> AsyncIterator[dict[str, Any]]:
        """The JSON lines of a result file, streamed (a file may hold 50,000 answers)."""
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                async with self._http().stream("GET", f"{self.base_url}/files/{file_id}/content") as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise status_failure(response.status_code, response.text, response.headers,
                                             where=f"{self._where} file {file_id}", secret=self._api_key)
                    async for text in response.aiter_lines():
                        line = json_line(text)
                        if line is not None:
                            yield line
                return
            except httpx.TransportError as exc:
                error = transport_failure(exc, where=self._where, secret=self._api_key)
            except ProviderError as exc:
                error = exc
            # a re-read yields lines again: the engine records each item once whatever it reads
            if not error.retryable or attempt >= self.retry.max_attempts:
                raise gave_up(error, attempt)
            await asyncio.sleep(self.retry.delay(attempt, error.retry_after))

    def _unusable(self, what: str, detail: object) -> ProviderError:
        return ProviderError(f"{self._where}: {what}: {str(detail)[:200]}", code="provider_error",
                             retryable=True)

    def _batch(self, raw: dict[str, Any]) -> RemoteBatch:
        batch_id, status = raw.get("id"), raw.get("status")
        if not isinstance(batch_id, str) or not isinstance(status, str):
            raise self._unusable("a batch object without id or status", raw)
        counts = _mapping(raw.get("request_counts"))
        expires = raw.get("expires_at")
        keep = ("input_file_id", "output_file_id", "error_file_id", "errors", "created_at")
        return RemoteBatch(
            id=batch_id, phase=_PHASES.get(status, "running"), status=status,
            total=_int(counts.get("total")), succeeded=_int(counts.get("completed")),
            failed=_int(counts.get("failed")),
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
            raw={k: raw.get(k) for k in keep if raw.get(k) is not None},
        )


def outcome_of(line: dict[str, Any]) -> LineOutcome | None:
    """One output- or error-file line as a LineOutcome (None: not attributable to an item)."""
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str):
        return None
    error = line.get("error")
    response = _mapping(line.get("response"))
    status = response.get("status_code")
    body = response.get("body")
    if isinstance(error, dict) and not (isinstance(status, int) and 200 <= status < 300):
        code = str(error.get("code") or "")
        message = str(error.get("message") or code or "the batch request failed")
        return LineOutcome(custom_id, code=_NOT_RUN.get(code, "provider_error"), message=message)
    if not isinstance(status, int):
        return LineOutcome(custom_id, code="provider_error", message="a result line without a response")
    if not 200 <= status < 300:
        text = json.dumps(body) if not isinstance(body, str) else body
        said = provider_message(text) or text[:300]
        return LineOutcome(custom_id, code=code_for_status(status), message=f"HTTP {status}: {said}")
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    try:
        return LineOutcome(custom_id, reply=parse_reply(raw, where="batch result line"), paid=True)
    except ProviderError as exc:
        return LineOutcome(custom_id, code="provider_error", message=exc.message, paid=True)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0
