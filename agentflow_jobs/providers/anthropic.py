"""Anthropic's Messages API (``POST {base_url}/v1/messages``) behind the ``Provider`` seam.

The sending is ``openai_compat``'s: the same retry loop and ``RetryPolicy``, the same
``Limiter`` fed by every reply's ``anthropic-ratelimit-*`` headers (``ratelimits``),
the same ``transport.Endpoint`` and self-hosted rules. Only the wire format differs:
the body is ``anthropic_request.message_body``, the reply ``anthropic_reply``, and the
key travels as ``x-api-key`` beside ``anthropic-version``.

What an error answer means (``failures``; the key is redacted from every message):

====================================  =================  ==========================
Anthropic answers                     per-item code      what happens
====================================  =================  ==========================
429 ``rate_limit_error``              ``rate_limited``   retried after Retry-After;
                                                         a spent bucket pauses all
529 ``overloaded_error``              ``provider_error`` retried with backoff, not a
                                                         rate limit (no pause)
500 ``api_error``, other 5xx          ``provider_error`` retried with backoff
408 / 409                             ``timeout`` /      retried
                                      ``provider_error``
400 ``invalid_request_error``, 404,   ``bad_request``    not retried
413 ``request_too_large``
400 "Your credit balance is too low"  ``insufficient_``  not retried; fails the job
                                      ``quota``          as a whole (add credit)
401 ``authentication_error``,         ``auth``           not retried; fails the job
403 ``permission_error``                                 as a whole, like OpenAI's
200 ``stop_reason: refusal``          ``refused``        not re-asked
200 ``stop_reason: max_tokens``       (truncated)        re-asked once, then
                                                         ``invalid_output``
200 not JSON / not a message          ``provider_error`` retried
timeout / connection reset            ``timeout`` /      retried
                                      ``provider_error``
====================================  =================  ==========================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.providers.anthropic_reply import parse_message
from agentflow_jobs.providers.anthropic_request import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    MessageBodies,
)
from agentflow_jobs.providers.openai_compat import OpenAICompatProvider
from agentflow_jobs.urls import display_url

__all__ = ["DEFAULT_BASE_URL", "AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicProvider(OpenAICompatProvider):
    """Claude through Anthropic's own Messages API, with retries and a shared limiter."""

    name = "anthropic"

    def __init__(self, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None,
                 model: str | None = None, *, max_tokens: int = DEFAULT_MAX_TOKENS,
                 version: str = ANTHROPIC_VERSION, structured_output: str = "tool", **options: Any) -> None:
        self.max_tokens = max_tokens
        self.native = structured_output == "native"
        self.version = version
        super().__init__(base_url, api_key, model, **options)
        self._messages = MessageBodies(self.default_model, max_tokens, native=self.native)

    def __repr__(self) -> str:  # never shows the key, nor a password in the URL
        return f"AnthropicProvider(base_url={display_url(self.base_url)!r}, model={self.default_model!r})"

    def _endpoint_url(self) -> str:
        # Anthropic's SDKs take the root as base_url; one given with /v1 works the same
        return f"{self.base_url.removesuffix('/v1')}/v1/messages"

    def _request_headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "user-agent": "agentflow-jobs",
                   "anthropic-version": self.version, **(extra or {})}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        return self._messages.payload(request)

    def encode(self, payload: dict[str, Any]) -> bytes:
        return self._messages.encode(payload)

    def parse(self, content: bytes, payload: dict[str, Any]) -> ChatReply:
        choice = payload.get("tool_choice") or {}
        return parse_message(content, choice.get("name"), where=self._where, secret=self._api_key)

    def refused_features(self, status: int, body: str, payload: dict[str, Any]) -> frozenset[str]:
        return frozenset()  # nothing is left out and resent: every feature we use is core
