"""The HTTP transport: httpx to an ``agentflow-jobs serve`` instance.

Error statuses become typed exceptions through ``errors.status_error`` (keeping status,
body and request id); an unreachable server is ``APIConnectionError``. Only requests that
are safe to repeat (GETs, and submits carrying an idempotency key) are retried, and only
when the connection could not be made.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from agentflow_jobs import __version__
from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.errors import APIConnectionError, APIStatusError, APITimeoutError, status_error
from agentflow_jobs.sdk.transports import UploadForm
from agentflow_jobs.wire import Batch, CompletionResult, OutputPage

__all__ = ["HTTPTransport", "error_from_response"]

# A connection that could not be made is tried again after 0.2, 0.5, then 1 s each time.
_CONNECT_RETRY = RetryPolicy(schedule=(0.2, 0.5, 1.0), jitter=False)


class HTTPTransport:
    """Talks to the service's ``/v1`` routes."""

    def __init__(
        self, base_url: str, api_key: str | None, *, timeout: float = 600.0, max_retries: int = 2
    ) -> None:
        root = base_url.rstrip("/").removesuffix("/v1")
        headers = {"User-Agent": f"agentflow-python/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.max_retries = max_retries
        self._client = httpx.AsyncClient(
            base_url=root + "/v1",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    async def complete(self, payload: dict[str, Any]) -> CompletionResult:
        response = await self._send("POST", "/completions", json=payload)
        return CompletionResult.model_validate(response.json())

    async def submit(self, payload: dict[str, Any], *, idempotency_key: str | None) -> Batch:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._send(
            "POST", "/batches", json=payload, headers=headers, retry=idempotency_key is not None
        )
        return Batch.model_validate(response.json())

    async def upload(
        self, filename: str, data: bytes, form: UploadForm, *, idempotency_key: str | None
    ) -> Batch:
        fields = {"operation": str(form.get("operation") or "")}
        for key in ("fields", "metadata"):
            if form.get(key) is not None:
                fields[key] = json.dumps(form[key])
        if form.get("model"):
            fields["model"] = str(form["model"])
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._send(
            "POST", "/batches/upload", data=fields, files={"file": (filename, data)}, headers=headers
        )
        return Batch.model_validate(response.json())

    async def retrieve(self, batch_id: str) -> Batch:
        return Batch.model_validate((await self._send("GET", f"/batches/{batch_id}")).json())

    async def list(self, limit: int) -> list[Batch]:
        response = await self._send("GET", "/batches", params={"limit": limit})
        return [Batch.model_validate(b) for b in response.json()["data"]]

    async def cancel(self, batch_id: str) -> Batch:
        return Batch.model_validate((await self._send("POST", f"/batches/{batch_id}/cancel")).json())

    async def output(self, batch_id: str, offset: int, limit: int) -> OutputPage:
        params = {"format": "json", "offset": offset, "limit": limit}
        response = await self._send("GET", f"/batches/{batch_id}/output", params=params)
        return OutputPage.model_validate(response.json())

    async def export(self, batch_id: str, fmt: str) -> AsyncIterator[bytes]:
        request = self._client.build_request(
            "GET", f"/batches/{batch_id}/output", params={"format": fmt}
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response)
            async for chunk in response.aiter_bytes():
                yield chunk
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(
        self, method: str, path: str, *, retry: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        retries = self.max_retries if (retry if retry is not None else method == "GET") else 0
        for attempt in range(retries + 1):
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                if attempt >= retries:
                    raise _transport_error(exc) from exc
                await asyncio.sleep(_CONNECT_RETRY.delay(attempt + 1))
                continue
            except httpx.HTTPError as exc:
                raise _transport_error(exc) from exc
            if response.status_code >= 400:
                raise error_from_response(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The typed exception for an error response, keeping status, body and request id."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message = f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message") or message)
    elif isinstance(body, str) and body.strip():
        message = f"{message}: {body.strip()[:200]}"
    return status_error(
        response.status_code,
        message,
        body=body,
        request_id=response.headers.get("x-request-id"),
    )


def _transport_error(exc: httpx.HTTPError) -> APIConnectionError | APITimeoutError:
    url = str(exc.request.url) if _has_request(exc) else "the AgentFlow service"
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"request to {url} timed out")
    return APIConnectionError(f"cannot reach {url}: {exc or type(exc).__name__}")


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when the error has no request
    except RuntimeError:
        return False
    return True
