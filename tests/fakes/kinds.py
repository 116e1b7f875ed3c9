"""What a test needs to say the same thing to either fake: a profile's provider block, and
what a recorded request body asked for, whichever API it was sent to."""

from __future__ import annotations

from typing import Any

from tests.fakes.handles import FakeProvider

__all__ = ["KINDS", "asked_schema", "provider_block", "sent_texts", "sent_user_text"]

KINDS = ("openai", "anthropic")


def provider_block(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    """A profile's ``provider:`` block for ``fake`` (on loopback, standing for a hosted API)."""
    model = "claude-haiku-4-5" if fake.kind == "anthropic" else "fake-model"
    return {"type": fake.kind, "base_url": fake.base_url, "api_key": "sk-test-key", "model": model,
            "self_hosted": False, **extra}


def asked_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a request asked the reply to follow (OpenAI's ``json_schema``
    response format, or the input schema of Anthropic's forced tool), else None."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return dict(fmt["json_schema"]["schema"])
    choice = body.get("tool_choice") or {}
    for tool in body.get("tools") or []:
        if tool.get("name") == choice.get("name"):
            return dict(tool["input_schema"])
    return None


def sent_texts(body: dict[str, Any]) -> list[str]:
    """Every prompt text of a request: system prompt(s), then the turns in order."""
    system = body.get("system")
    texts = [system] if isinstance(system, str) and system else []
    return texts + [str(m.get("content")) for m in body.get("messages", [])]


def sent_user_text(body: dict[str, Any]) -> str:
    """The last user turn of a request."""
    return next(str(m["content"]) for m in reversed(body["messages"]) if m.get("role") == "user")
