"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, vLLM, Ollama, ...).

The provider only sends: what a failure means lives in ``failures.py``, the wait
before the next attempt in ``backoff.RetryPolicy``, pacing in ``limiter.py``. HTTP goes
through an httpx transport (``httpx.Request`` in, ``httpx.Response`` out, httpx's
exceptions): by default ``AiohttpPoolTransport`` (aiohttp's connection pool, called
directly), which keeps its rate with hundreds of requests in flight where
``httpx.AsyncClient`` does not; ``transport="httpx"`` uses httpx's own. Figures: ``bench/transport.py`` and bench/README.md.

A model whose server says it cannot take ``response_format: json_schema`` (a 400/422
saying the type is unsupported, unknown, not allowed, ...) gets ``json_object`` instead,
with the schema written into a system message; the provider remembers that for the
model, since support differs per model. A 400 about the schema itself (OpenAI's
"Invalid schema for response_format ...") is the request's own error, not a fallback.
Likewise a model whose server refuses ``logprobs``/``top_logprobs`` gets the request
without them (label confidence then comes from the model's own estimate). Such a resend
is not a retry attempt, and happens at most once per feature.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import httpx

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.chat import ChatReply, ChatRequest, TokenLogprob
from agentflow_jobs.errors import ProviderError, UnsupportedFeatureError
from agentflow_jobs.providers.failures import (
    gave_up,
    malformed_failure,
    status_failure,
    transport_failure,
)
from agentflow_jobs.providers.limiter import Limiter, Permit
from agentflow_jobs.providers.transport import AiohttpPoolTransport, RawResponse, aiohttp_timeout
from agentflow_jobs.urls import display_url
from agentflow_jobs.wire import Usage

__all__ = ["CONTENT_FILTERED", "OpenAICompatProvider", "parse_reply"]

DEFAULT_TIMEOUT = 60.0
# reserved against tokens_per_minute when a request does not say its max_tokens
DEFAULT_OUTPUT_TOKENS = 512
# ChatReply.refusal when the content filter stopped a reply that gave no reason
CONTENT_FILTERED = "the provider's content filter stopped the reply"
_INF = float("inf")
# one object for every fallback request: _encode caches the encoded tail by its id
_JSON_OBJECT: dict[str, Any] = {"type": "json_object"}
_TRANSPORT_ERRORS = (httpx.TransportError, aiohttp.ClientError, OSError, TimeoutError)


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
        self._where = f"provider {display_url(self.base_url)}"
        self._api_key = api_key or None
        merged = {"content-type": "application/json", "user-agent": "agentflow-jobs", **(headers or {})}
        if self._api_key:
            merged["authorization"] = f"Bearer {self._api_key}"
        # built once: per-request httpx URL/header parsing is measurable at 1000s of requests/s
        self._headers = httpx.Headers(merged)
        self._header_map = dict(self._headers.items())
        self._url_object = httpx.URL(self._url)
        self._total_timeout = timeout
        connect = connect_timeout or min(10.0, timeout)
        self._extensions = {"timeout": httpx.Timeout(
            timeout, connect=connect, read=read_timeout or timeout, pool=connect
        ).as_dict()}
        timeouts = {**self._extensions["timeout"], "total": timeout}
        if (timeouts.get("read") or 0) >= timeout:
            # the total timeout fires first anyway; a read timer is re-armed per packet
            timeouts["read"] = None
        self._aiohttp_timeout = aiohttp_timeout(timeouts)
        self.retry = retry or RetryPolicy(max_attempts=max_attempts)
        self.limiter = limiter or Limiter(
            concurrency=concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
        )
        if transport not in ("aiohttp", "httpx"):
            raise ValueError("transport is 'aiohttp' or 'httpx'")
        self._transport = transport
        # feature -> the models whose server refused it; payload() leaves it out for them
        self._unsupported: dict[str, set[str | None]] = {feature: set() for feature in _REFUSED}
        self._http: httpx.AsyncBaseTransport | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._tails: dict[tuple[Any, ...], tuple[Any, bytes]] = {}
        self._systems: dict[tuple[tuple[str, Any], ...], str] = {}

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatProvider(base_url={display_url(self.base_url)!r}, model={self.default_model!r})"

    async def chat(self, request: ChatRequest) -> ChatReply:
        payload = self.payload(request)
        body = self._encode(payload)
        limit = request.max_attempts or self.retry.max_attempts
        attempt = sent = 0  # retry attempts; HTTP requests (fallback resends included)
        while True:
            attempt += 1
            sent += 1
            try:
                reply = await self._attempt(payload, body)
            except UnsupportedFeatureError as refused:
                # the new payload leaves the features out, so no feature is refused twice
                for feature in refused.features:
                    self._unsupported[feature].add(payload.get("model"))
                payload = self.payload(request)
                body = self._encode(payload)
                attempt -= 1  # a different request, not a retry of this one
                continue
            except ProviderError as error:
                if not error.retryable or attempt >= limit:
                    final = gave_up(error, attempt)
                    final.attempts = sent
                    raise final from None
                await asyncio.sleep(self.retry.delay(attempt, error.retry_after))
                continue
            if sent > 1:  # the usage of one reply says one request; this one took more
                usage = reply.usage.model_copy(update={"requests": sent})
                reply = dataclasses.replace(reply, usage=usage)
            return reply

    def _encode(self, payload: dict[str, Any]) -> bytes:
        """``json.dumps(payload).encode()``, with everything after the messages encoded
        once per distinct tail (one per request in practice, the schema being the bulk)."""
        tail = {k: v for k, v in payload.items() if k != "messages"}
        fmt = tail.get("response_format")
        key = (id(fmt), tail.get("model"), tail.get("temperature"), tail.get("max_tokens"),
               tail.get("logprobs"), tail.get("top_logprobs"), tuple(tail))
        cached = self._tails.get(key)
        # the format object is kept in the entry: its id is only a key while it lives
        if cached is None or cached[0] is not fmt:
            encoded = json.dumps(tail)
            suffix = (", " + encoded[1:] if tail else "}").encode()
            if len(self._tails) >= 64:
                self._tails.clear()
            cached = self._tails[key] = (fmt, suffix)
        messages = ", ".join(map(self._message_json, payload["messages"]))
        return b'{"messages": [' + messages.encode() + b"]" + cached[1]

    def _message_json(self, message: dict[str, Any]) -> str:
        """One message as JSON; the system prompt (the same for every item) encoded once."""
        if message.get("role") != "system" or not all(isinstance(v, str) for v in message.values()):
            return json.dumps(message)
        key = tuple(message.items())  # key order is part of the JSON
        found = self._systems.get(key)
        if found is None:
            if len(self._systems) >= 64:
                self._systems.clear()
            found = self._systems[key] = json.dumps(message)
        return found

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None and self._http_loop is asyncio.get_running_loop():
            await http.aclose()
        self._http_loop = None

    # ---- one attempt -----------------------------------------------------------------

    async def _attempt(self, payload: dict[str, Any], body: bytes) -> ChatReply:
        # the estimate only matters to a tokens-per-minute budget
        tokens = _estimate_tokens(payload) if self.limiter.tokens_per_minute else 0
        async with self.limiter.slot(tokens) as permit:
            response = await self._post(body)
            if response.status >= 400:
                self._failed(permit, response, payload)
            reply = parse_reply(response.content, where=self._where, secret=self._api_key)
            self.limiter.settle(permit, reply.usage.total_tokens or None)
            self.limiter.on_success()
            return reply

    def _failed(self, permit: Permit, response: RawResponse, payload: dict[str, Any]) -> None:
        body = response.content.decode("utf-8", "replace")
        error = status_failure(
            response.status, body, response.headers, where=self._where, secret=self._api_key
        )
        self.limiter.settle(permit, 0)  # a refused request used no tokens
        if response.status == 429:
            pause = error.retry_after
            if pause is not None:
                pause = min(pause, self.retry.max_retry_after)
            self.limiter.on_rate_limited(permit, pause)
        refused = _refused_features(response.status, body, payload)
        if refused:
            raise UnsupportedFeatureError(refused, status_code=response.status)
        raise error

    async def _post(self, body: bytes) -> RawResponse:
        http = self._transport_for_loop()
        try:
            if isinstance(http, AiohttpPoolTransport):
                return await http.post(self._url, body, self._header_map, self._aiohttp_timeout)
            request = httpx.Request(
                "POST", self._url_object, headers=self._headers, content=body, extensions=self._extensions
            )
            async with asyncio.timeout(self._total_timeout):
                response = await http.handle_async_request(request)
                await response.aread()
            return RawResponse(response.status_code, response.headers, response.content)
        except _TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, where=self._where, secret=self._api_key) from None

    def _transport_for_loop(self) -> httpx.AsyncBaseTransport:
        # aiohttp sessions belong to one event loop; a sync wrapper may run several
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            self._http = self._make_transport()
            self._http_loop = loop
        return self._http

    def _make_transport(self) -> httpx.AsyncBaseTransport:
        size = self.limiter.max_concurrency
        if self._transport == "aiohttp":
            return AiohttpPoolTransport(max_connections=size)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=30)
        return httpx.AsyncHTTPTransport(limits=limits)

    # ---- request body ----------------------------------------------------------------

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body this provider sends for ``request`` (benchmarks replay it)."""
        messages = list(request.messages)
        payload: dict[str, Any] = {"messages": messages}
        model = request.model or self.default_model or None
        if model:
            payload["model"] = model
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.max_tokens:
            payload["max_tokens"] = request.max_tokens
        fmt = request.response_format
        if fmt and fmt.get("type") == "json_schema" and model in self._unsupported["json_schema"]:
            payload["messages"] = _with_schema_note(messages, fmt)
            fmt = _JSON_OBJECT
        if fmt and fmt.get("type") == "json_object" and model in self._unsupported["json_object"]:
            # no response_format at all (the schema note, if any, stays): the operations
            # read a JSON object out of a plain reply and validate it all the same
            fmt = None
        if fmt:
            payload["response_format"] = fmt
        if request.logprobs and model not in self._unsupported["logprobs"]:
            payload["logprobs"] = True
            if request.top_logprobs:
                payload["top_logprobs"] = request.top_logprobs
        return payload


# How servers say they cannot take a parameter or one of its values: OpenAI, Azure,
# vLLM and other pydantic-based servers, TGI (serde), LiteLLM, Groq, DeepSeek, Gemini.
_REFUSAL = (
    r"unsupported|n[o']t (?:support|enabled|available|allowed|permitted|recogni[sz]ed)"
    r"|unavailable|unknown|unrecogni[sz]ed|unexpected|must be one of|supported values"
    r"|invalid value|input should be '|extra (?:inputs|fields)|enabled only|max allowed"
)


def _refusal_of(subject: str) -> re.Pattern[str]:
    """The subject and a refusal close together, in either order: a server's message
    names the parameter next to its complaint (pydantic puts the complaint after the
    parameter's location, LiteLLM before the parameter's name)."""
    near = ".{0,60}?"
    return re.compile(f"(?:{subject}){near}(?:{_REFUSAL})|(?:{_REFUSAL}){near}(?:{subject})", re.S)


_REFUSED = {
    "json_schema": _refusal_of("json_schema|response_format"),
    # a server that takes no response_format at all (LiteLLM: "does not support
    # parameters: ['response_format']") refuses json_object too: then none is sent
    "json_object": _refusal_of("json_object|response_format"),
    "logprobs": _refusal_of("logprobs"),
}
# The schema itself is wrong (OpenAI: "Invalid schema for response_format 'x': In
# context=(...), ..."): the request's own error, whatever words follow.
_SCHEMA_ERROR = re.compile(r"invalid[ _](?:json[ _])?schema|schema is invalid|json_schema\.schema|in context=")


def _refused_features(status: int, body: str, payload: dict[str, Any]) -> frozenset[str]:
    """The features of ``payload`` that a 400/422 ``body`` says the model cannot take."""
    if status not in (400, 422):
        return frozenset()
    lowered = body.lower()
    if _SCHEMA_ERROR.search(lowered):
        return frozenset()
    return frozenset(f for f in _sent_features(payload) if _REFUSED[f].search(lowered))


def _sent_features(payload: dict[str, Any]) -> Iterator[str]:
    fmt = payload.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        yield "json_schema"
    if fmt.get("type") == "json_object":
        yield "json_object"
    if payload.get("logprobs"):
        yield "logprobs"


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
    except (ValueError, RecursionError):  # nesting deep enough to exhaust the parser too
        raise malformed_failure("malformed JSON", text, where=where, secret=secret) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed_failure("no choices", text, where=where, secret=secret)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    content = message.get("content")
    finish_reason = choice.get("finish_reason")
    return ChatReply(
        text=content if isinstance(content, str) else ("" if content is None else json.dumps(content)),
        usage=_usage(data.get("usage")),
        finish_reason=finish_reason,
        model=data.get("model"),
        logprobs=_logprobs(choice.get("logprobs")),
        refusal=_refusal(message.get("refusal"), finish_reason),
    )


def _refusal(text: Any, finish_reason: Any) -> str | None:
    """Why the model gave no answer, if it declined: its own words, else the content
    filter; an empty reply alone is not a refusal (the operation judges that)."""
    if isinstance(text, str) and text:
        return text
    if finish_reason == "content_filter":
        return CONTENT_FILTERED
    return None


def _usage(raw: Any) -> Usage:
    """The reply's token counts; a count that is not a whole number >= 0 is taken as 0
    (a provider's odd bookkeeping must not fail an item it answered)."""
    if not isinstance(raw, dict):
        return Usage(requests=1)
    prompt = _count(raw.get("prompt_tokens"))
    completion = _count(raw.get("completion_tokens"))
    total = _count(raw.get("total_tokens")) or prompt + completion
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total, requests=1)


def _count(value: Any) -> int:
    if type(value) is int:  # the usual case, checked first
        return value if value > 0 else 0
    if not isinstance(value, float) or value != value or value in (_INF, -_INF):  # NaN, ±inf
        return 0
    return max(0, int(value))


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
