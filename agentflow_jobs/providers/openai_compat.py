"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, vLLM, Ollama, ...).

The provider only sends, retrying what may be retried: the bodies it sends are
``openai_request.RequestBodies``, the replies it reads ``openai_reply.parse_reply``,
what a failure means ``failures.py``, the wait before the next attempt its
``backoff.RetryPolicy``, pacing ``limiter.py``. HTTP goes through a
``transport.Endpoint``: by default over ``AiohttpPoolTransport`` (aiohttp's connection
pool, called directly), which keeps its rate with hundreds of requests in flight where
``httpx.AsyncClient`` does not; ``transport="httpx"`` uses httpx's own. Figures:
``bench/transport.py`` and bench/README.md.

A model whose server refuses a feature of the request (``json_schema``, ``json_object``,
``logprobs``; see ``openai_request``) gets the request again without it. Such a resend
is not a retry attempt, and happens at most once per feature. A body is checked against
what has been refused once its request holds a limiter slot, so the requests that were
waiting for one when the refusal came do not send the refused feature again: at most
the requests in flight at that moment carry it.

Every reply's rate-limit headers go to the limiter (``ratelimits``, ``Limiter.observe``);
a 429 is an exhausted bucket (the limiter pauses every start) or a stray (only this
request waits its Retry-After).

A self-hosted server (``self_hosted``: a loopback or private address unless the profile
says otherwise) that times out is busy with the request, not gone: sending it again at
once doubles its work. There a timed-out request halves the in-flight limit and is sent
again at most once (``SELF_HOSTED_TIMEOUT_ATTEMPTS``), with twice the time; a hosted API's
timeouts are retried like any transient failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.errors import ProviderError, UnsupportedFeatureError
from agentflow_jobs.providers.failures import gave_up, status_failure, transport_failure
from agentflow_jobs.providers.limiter import Limiter, Permit
from agentflow_jobs.providers.openai_reply import parse_reply
from agentflow_jobs.providers.openai_request import RequestBodies, estimate_tokens
from agentflow_jobs.providers.ratelimits import RateHeaders, is_exhausted, read_headers
from agentflow_jobs.providers.transport import Endpoint, RawResponse
from agentflow_jobs.urls import display_url

__all__ = ["DEFAULT_TIMEOUT", "SELF_HOSTED_TIMEOUT_ATTEMPTS", "OpenAICompatProvider"]

DEFAULT_TIMEOUT = 60.0
# attempts a request that timed out against a self-hosted server gets in all
SELF_HOSTED_TIMEOUT_ATTEMPTS = 2
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
        self_hosted: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.self_hosted = self_hosted
        self.default_model = model
        self._where = f"provider {display_url(self.base_url)}"
        self._api_key = api_key or None
        self.retry = retry or RetryPolicy(max_attempts=max_attempts)
        self.limiter = limiter or Limiter(
            concurrency=concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
        )
        self._endpoint = Endpoint(
            self._endpoint_url(), self._request_headers(headers),
            timeout=timeout, connect_timeout=connect_timeout, read_timeout=read_timeout,
            max_connections=self.limiter.max_concurrency, kind=transport,
        )
        self._bodies = RequestBodies()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatProvider(base_url={display_url(self.base_url)!r}, model={self.default_model!r})"

    # ---- the wire format: what a subclass for another API (anthropic) replaces --------

    def _endpoint_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _request_headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return _headers(self._api_key, extra)

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body this provider sends for ``request`` (benchmarks replay it)."""
        return self._bodies.payload(request, self.default_model)

    def encode(self, payload: dict[str, Any]) -> bytes:
        return self._bodies.encode(payload)

    def parse(self, content: bytes, payload: dict[str, Any]) -> ChatReply:
        """The answered (2xx) body of ``payload`` as a ChatReply; a ProviderError when unusable."""
        return parse_reply(content, where=self._where, secret=self._api_key)

    def refused_features(self, status: int, body: str, payload: dict[str, Any]) -> frozenset[str]:
        """The request features an error answer says the model cannot take (resent without)."""
        return self._bodies.refused(status, body, payload)

    def _build(self, request: ChatRequest) -> _Body:
        payload = self.payload(request)
        return _Body(payload, self.encode(payload), self._bodies.version)

    async def chat(self, request: ChatRequest) -> ChatReply:
        built = self._build(request)
        limit = request.max_attempts or self.retry.max_attempts
        attempt = sent = 0  # retry attempts; HTTP requests (fallback resends included)
        timeout: float | None = None  # the endpoint's own, until a self-hosted timeout
        while True:
            attempt += 1
            sent += 1
            try:
                reply = await self._attempt(request, built, timeout)
            except UnsupportedFeatureError:
                # the next attempt's body is built again without the refused features
                attempt -= 1  # a different request, not a retry of this one
                continue
            except ProviderError as error:
                wait = self._retry_wait(error, attempt, limit)
                if wait is None:
                    final = gave_up(error, attempt)
                    final.attempts = sent
                    raise final from None
                if error.code == "timeout" and self.self_hosted:
                    timeout = 2.0 * (timeout or self._endpoint.timeout)
                await asyncio.sleep(wait)
                continue
            if sent > 1:  # the usage of one reply says one request; this one took more
                usage = reply.usage.model_copy(update={"requests": sent})
                reply = dataclasses.replace(reply, usage=usage)
            return reply

    def _retry_wait(self, error: ProviderError, attempt: int, limit: int) -> float | None:
        """Seconds before the next attempt after ``error``, or None to give up."""
        if error.code == "timeout" and self.self_hosted:
            limit = min(limit, SELF_HOSTED_TIMEOUT_ATTEMPTS)
        if not error.retryable or attempt >= limit:
            return None
        return self.retry.delay(attempt, error.retry_after)

    async def aclose(self) -> None:
        await self._endpoint.aclose()

    # ---- one attempt -----------------------------------------------------------------

    async def _attempt(self, request: ChatRequest, built: _Body, timeout: float | None) -> ChatReply:
        # the estimate only matters to a tokens-per-minute budget
        tokens = estimate_tokens(built.payload) if self.limiter.tokens_per_minute else 0
        async with self.limiter.slot(tokens) as permit:
            if built.version != self._bodies.version:  # a refusal came while it waited
                fresh = self._build(request)
                built.payload, built.data, built.version = fresh.payload, fresh.data, fresh.version
            response = await self._post(built.data, timeout, permit)
            rates = read_headers(response.headers)
            if rates is not None:
                self.limiter.observe(rates)
            if response.status >= 300:  # redirects are not followed: a POST must not move
                self._failed(permit, response, built, rates)
            reply = self.parse(response.content, built.payload)
            self.limiter.settle(permit, reply.usage.total_tokens or None)
            self.limiter.on_success(permit)
            return reply

    def _failed(self, permit: Permit, response: RawResponse, built: _Body, rates: RateHeaders | None) -> None:
        body = response.content.decode("utf-8", "replace")
        error = status_failure(
            response.status, body, response.headers, where=self._where, secret=self._api_key
        )
        self.limiter.settle(permit, 0)  # a refused request used no tokens
        if error.code == "rate_limited":  # not a spent account: waiting refills the bucket
            self._rate_limited(permit, error, rates, body)
        refused = self.refused_features(response.status, body, built.payload)
        # resent only when it can go without what was refused: a body built with every
        # refusal known already would be refused again, forever
        if refused and built.version != self._bodies.version:
            raise UnsupportedFeatureError(refused, status_code=response.status)
        raise error

    def _rate_limited(self, permit: Permit, error: ProviderError, rates: RateHeaders | None, body: str) -> None:
        """Tell the limiter whether this 429 shows a spent bucket (pause) or is a stray."""
        pause = error.retry_after
        if pause is None and rates is not None:
            pause = rates.reset_s()
        if pause is not None:
            pause = min(pause, self.retry.max_retry_after)
        self.limiter.on_rate_limited(permit, pause, exhausted=is_exhausted(rates, body))

    async def _post(self, body: bytes, timeout: float | None, permit: Permit) -> RawResponse:
        try:
            return await self._endpoint.post(body, timeout=timeout)
        except _TRANSPORT_ERRORS as exc:
            error = transport_failure(exc, where=self._where, secret=self._api_key,
                                      limit=self._endpoint.limit_hit(exc, timeout))
            if error.code == "timeout" and self.self_hosted:
                self.limiter.on_overloaded(permit)  # it is still working on what we sent
            raise error from None


@dataclasses.dataclass(slots=True)
class _Body:
    """A request's JSON body, and the refusals version (``RequestBodies``) it was built under."""

    payload: dict[str, Any]
    data: bytes
    version: int


def _headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The headers of every request: JSON, our user agent, the caller's, the key."""
    merged = {"content-type": "application/json", "user-agent": "agentflow-jobs", **(extra or {})}
    if api_key:
        merged["authorization"] = f"Bearer {api_key}"
    return merged
