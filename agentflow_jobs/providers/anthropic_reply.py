"""An Anthropic Message (the Messages API's reply, a batch result's ``message``) as a ChatReply.

- Text: the forced tool's ``tool_use`` input as JSON when the request named a tool
  (structured output, see ``anthropic_request``), else the text blocks joined. A tool
  call cut off at ``max_tokens`` carries an input that cannot be trusted: its text is
  empty, so the operation reports the cut and re-asks as for any truncated reply.
- ``stop_reason``: ``max_tokens`` → finish_reason ``length`` (the operations' truncation
  handling); ``refusal`` → ``ChatReply.refusal`` (the row fails as ``refused``);
  ``end_turn``, ``stop_sequence``, ``tool_use`` → ``stop``.
- Usage: ``prompt_tokens`` is everything read, ``input_tokens`` plus the cache's
  ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` (Anthropic counts them
  apart; we send no cache breakpoints, so they are 0 unless a proxy adds some);
  ``completion_tokens`` is ``output_tokens``.

A body that is not JSON or not a message is a retryable ``ProviderError``.
"""

from __future__ import annotations

import json
from typing import Any

from agentflow_jobs.chat import ChatReply
from agentflow_jobs.providers.failures import malformed_failure
from agentflow_jobs.wire import Usage

__all__ = ["ANY_TOOL", "REFUSED", "message_reply", "parse_message", "usage_of"]

# the tool argument for a reply whose request is not at hand (a batch result): the
# request forced one tool at most, so any tool_use block is its answer
ANY_TOOL = "*"
# ChatReply.refusal when a refusal stop carries no words of its own
REFUSED = "the model stopped with stop_reason 'refusal'"
_FINISH = {"max_tokens": "length", "end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop",
           "refusal": "refusal", "pause_turn": "stop"}


def parse_message(body: bytes, tool: str | None, *, where: str = "provider",
                  secret: str | None = None) -> ChatReply:
    """A Messages API reply body as a ChatReply; unusable bodies are retryable errors."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise malformed_failure("malformed JSON", text, where=where, secret=secret) from None
    reply = message_reply(data, tool)
    if reply is None:
        raise malformed_failure("not a message", text, where=where, secret=secret)
    return reply


def message_reply(data: Any, tool: str | None) -> ChatReply | None:
    """A decoded Message as a ChatReply, or None when it is not one (no content list)."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        return None
    blocks = [b for b in data["content"] if isinstance(b, dict)]
    stop = data.get("stop_reason")
    text = _text(blocks, tool, cut=stop == "max_tokens")
    refusal = None
    if stop == "refusal":
        refusal = text.strip() if text.strip() and not text.lstrip().startswith("{") else REFUSED
    return ChatReply(
        text=text,
        usage=usage_of(data.get("usage")),
        finish_reason=_FINISH.get(str(stop), None if stop is None else str(stop)),
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        refusal=refusal,
    )


def _text(blocks: list[dict[str, Any]], tool: str | None, *, cut: bool) -> str:
    if tool is not None:
        for block in blocks:
            if block.get("type") == "tool_use" and tool in (ANY_TOOL, block.get("name")):
                value = block.get("input")
                if cut or not isinstance(value, dict):
                    return ""
                return json.dumps(value, ensure_ascii=False)
    return "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")


def usage_of(raw: Any) -> Usage:
    """Anthropic's token counts as ours (see the module doc); odd counts are 0."""
    if not isinstance(raw, dict):
        return Usage(requests=1)
    read = sum(_count(raw.get(k)) for k in
               ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    written = _count(raw.get("output_tokens"))
    return Usage(prompt_tokens=read, completion_tokens=written, total_tokens=read + written, requests=1)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0
    if value in (float("inf"), float("-inf")):
        return 0
    return max(0, int(value))
