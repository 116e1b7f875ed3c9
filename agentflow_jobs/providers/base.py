"""The one small seam every model backend implements: the ``Provider`` protocol.

Operations (pure) build a ``chat.ChatRequest`` and judge a ``chat.ChatReply``; a
provider only sends. Providers raise ``errors.ProviderError`` with a per-item ``code``
(``rate_limited``, ``provider_error``, ``timeout``, ``bad_request``, ...).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from agentflow_jobs.chat import ChatReply, ChatRequest

__all__ = ["Provider"]


@runtime_checkable
class Provider(Protocol):
    """An async model backend."""

    name: str
    default_model: str | None

    async def chat(self, request: ChatRequest) -> ChatReply:
        """Send one request (with retries and rate limiting inside); raise ProviderError."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and models."""
        ...
