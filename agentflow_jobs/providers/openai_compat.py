"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, vLLM, Ollama, ...).

The provider only sends: the retry decision lives in ``retry.py``, pacing in
``limiter.py``. HTTP goes through httpx with the ``httpx-aiohttp`` transport: httpx's
API, aiohttp's connection pool, which keeps its rate with hundreds of requests in flight
where httpx's own pool does not (figures in ``bench/transport.py`` and bench/README.md).

A server that rejects ``response_format: json_schema`` (a 400 naming response_format or
json_schema) gets ``json_object`` instead, with the schema written into a system
message; the provider remembers that for every later request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from agentflow_jobs.errors import ProviderError
from agentflow_jobs.providers.base import ChatReply, ChatRequest, TokenLogprob
from agentflow_jobs.providers.limiter import Limiter, Permit
from agentflow_jobs.providers.retry import (
    RetryPolicy,
    gave_up,
    malformed_failure,
    status_failure,
    transport_failure,
)
from agentflow_jobs.wire import Usage

__all__ = ["OpenAICompatProvider", "parse_reply"]

DEFAULT_TIMEOUT = 60.0
# reserved against tokens_per_minute when a request does not say its max_tokens
DEFAULT_OUTPUT_TOKENS = 512
_TRANSPORT_ERRORS = (httpx.TransportError, aiohttp.ClientError, OSError, TimeoutError)


class _SchemaRejected(Exception):
    """The endpoint does not support json_schema; resend as json_object."""


class OpenAICompatProvider:
    """An OpenAI-compatible chat-completions endpoint, with retries and a shared limiter."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_attempts: int = 3,
        concurrency: int = 64,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        transport: str = "aiohttp",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.default_model = model
        self._url = f"{self.base_url}/chat/completions"
        self._where = f"provider {self.base_url}"
        self._api_key = api_key or None
        self._headers = {"content-type": "application/json", **(headers or {})}
        if self._api_key:
            self._headers["authorization"] = f"Bearer {self._api_key}"
        self._total_timeout = timeout
        self._timeout = httpx.Timeout(
            timeout, connect=connect_timeout or min(10.0, timeout), read=read_timeout or timeout
        )
        self.retry = retry or RetryPolicy(max_attempts=max_attempts)
        self.limiter = limiter or Limiter(
            concurrency=concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
        )
        if transport not in ("aiohttp", "httpx"):
            raise ValueError("transport is 'aiohttp' or 'httpx'")
        self._transport = transport
        self.json_schema_supported = True
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatProvider(base_url={self.base_url!r}, model={self.default_model!r})"

    async def chat(self, request: ChatRequest) -> ChatReply:
        payload = self._payload(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(payload)
            except _SchemaRejected:
                self.json_schema_supported = False
                payload = self._payload(request)
                attempt -= 1  # a different request, not a retry of this one
                continue
            except ProviderError as error:
                if not error.retryable or attempt >= self.retry.max_attempts:
                    raise gave_up(error, attempt) from None
                await asyncio.sleep(self.retry.delay(attempt, error.retry_after))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()
        self._client_loop = None

    # ---- one attempt -----------------------------------------------------------------

    async def _attempt(self, payload: dict[str, Any]) -> ChatReply:
        async with self.limiter.slot(_estimate_tokens(payload)) as permit:
            response = await self._post(payload)
            if response.status_code >= 400:
                self._failed(permit, response, payload)
            reply = parse_reply(response.content, where=self._where, secret=self._api_key)
            self.limiter.settle(permit, reply.usage.total_tokens or None)
            self.limiter.on_success()
            return reply

    def _failed(self, permit: Permit, response: httpx.Response, payload: dict[str, Any]) -> None:
        body = response.text
        error = status_failure(
            response.status_code, body, response.headers, where=self._where, secret=self._api_key
        )
        self.limiter.settle(permit, 0)  # a refused request used no tokens
        if response.status_code == 429:
            self.limiter.on_rate_limited(permit, error.retry_after)
        if _rejects_json_schema(response.status_code, body, payload):
            raise _SchemaRejected
        raise error

    async def _post(self, payload: dict[str, Any]) -> httpx.Response:
        client = self._client_for_loop()
        try:
            async with asyncio.timeout(self._total_timeout):
                return await client.post(self._url, content=json.dumps(payload).encode())
        except _TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, where=self._where, secret=self._api_key) from None

    def _client_for_loop(self) -> httpx.AsyncClient:
        # aiohttp sessions belong to one event loop; a sync wrapper may run several
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._make_client()
            self._client_loop = loop
        return self._client

    def _make_client(self) -> httpx.AsyncClient:
        size = self.limiter.max_concurrency
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=30)
        transport: httpx.AsyncBaseTransport
        if self._transport == "aiohttp":
            transport = AiohttpTransport(limits=limits)
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits)
        return httpx.AsyncClient(transport=transport, timeout=self._timeout, headers=self._headers)

    # ---- request body ----------------------------------------------------------------

    def _payload(self, request: ChatRequest) -> dict[str, Any]:
        messages = list(request.messages)
        payload: dict[str, Any] = {"messages": messages}
        model = request.model or self.default_model
        if model:
            payload["model"] = model
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.max_tokens:
            payload["max_tokens"] = request.max_tokens
        fmt = request.response_format
        if fmt and fmt.get("type") == "json_schema" and not self.json_schema_supported:
            payload["messages"] = _with_schema_note(messages, fmt)
            fmt = {"type": "json_object"}
        if fmt:
            payload["response_format"] = fmt
        if request.logprobs:
            payload["logprobs"] = True
            if request.top_logprobs:
                payload["top_logprobs"] = request.top_logprobs
        return payload


def _rejects_json_schema(status: int, body: str, payload: dict[str, Any]) -> bool:
    fmt = payload.get("response_format") or {}
    if status not in (400, 422) or fmt.get("type") != "json_schema":
        return False
    lowered = body.lower()
    return "response_format" in lowered or "json_schema" in lowered


def _with_schema_note(messages: list[dict[str, str]], fmt: dict[str, Any]) -> list[dict[str, str]]:
    """Say the schema in words: json_object mode only promises *some* JSON object."""
    spec = fmt.get("json_schema") or {}
    schema = spec.get("schema", spec) if isinstance(spec, dict) else spec
    note = "Reply with one JSON object that follows this JSON Schema:\n" + json.dumps(schema)
    return [{"role": "system", "content": note}, *messages]


def _estimate_tokens(payload: dict[str, Any]) -> int:
    chars = sum(len(str(m.get("content") or "")) for m in payload["messages"])
    return chars // 4 + 1 + int(payload.get("max_tokens") or DEFAULT_OUTPUT_TOKENS)


def parse_reply(body: bytes, *, where: str = "provider", secret: str | None = None) -> ChatReply:
    """A chat-completion body as a ChatReply; unusable bodies are retryable errors."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        raise malformed_failure("malformed JSON", text, where=where, secret=secret) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed_failure("no choices", text, where=where, secret=secret)
    choice = choices[0]
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return ChatReply(
        text=content if isinstance(content, str) else ("" if content is None else json.dumps(content)),
        usage=_usage(data.get("usage")),
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
        logprobs=_logprobs(choice.get("logprobs")),
    )


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage(requests=1)
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    total = int(raw.get("total_tokens") or prompt + completion)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total, requests=1)


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    entries = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        return None
    out: list[TokenLogprob] = []
    for entry in entries:
        if not isinstance(entry, dict) or "token" not in entry:
            continue
        top = {
            str(t["token"]): float(t["logprob"])
            for t in entry.get("top_logprobs") or []
            if isinstance(t, dict) and "token" in t and "logprob" in t
        }
        out.append(TokenLogprob(token=str(entry["token"]), logprob=float(entry.get("logprob", 0.0)), top=top))
    return out
