"""Helpers for provider tests: a provider pointed at the fake, with short waits."""

from __future__ import annotations

import asyncio
from typing import Any

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.providers.base import Provider
from agentflow_jobs.providers.openai_compat import OpenAICompatProvider
from tests.providers.llama_server import llama_server  # noqa: F401  (a session fixture)

API_KEY = "sk-test-SECRET-0123456789abcdef"
LABEL_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "label",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": ["positive", "negative"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["label", "confidence"],
            "additionalProperties": False,
        },
    },
}


def make_provider(base_url: str, *, max_attempts: int = 3, **options: Any) -> OpenAICompatProvider:
    """A provider with millisecond backoff, so retry tests stay fast."""
    options.setdefault("retry", RetryPolicy(max_attempts=max_attempts, base_delay=0.01, max_delay=0.05))
    return OpenAICompatProvider(base_url, api_key=API_KEY, model="fake-model", **options)


def request(text: str = "hello", **fields: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **fields)


def chat_once(provider: Provider, chat: ChatRequest | None = None) -> ChatReply:
    """One request through ``provider`` on its own loop, the provider closed after it."""

    async def run() -> ChatReply:
        try:
            return await provider.chat(chat or request())
        finally:
            await provider.aclose()

    return asyncio.run(run())
