"""What the Anthropic fake answers to one Messages request: the OpenAI fake's answers in
Anthropic's shapes.

A Messages body is read as the chat body the OpenAI fake understands (``chat_view``:
``system`` first, a forced tool's ``input_schema`` as a ``json_schema`` format), so
``replies.content_for`` picks the same labels and builds the same objects. The reply is
then a Message: a ``tool_use`` block for a forced tool, else a ``text`` block, with
``stop_reason`` and Anthropic's usage fields. Script faults map as: ``refusal`` and
``content_filter`` → ``stop_reason: refusal`` with the model's words; ``truncated`` →
``max_tokens`` with half an answer; ``non_json`` → prose instead of the tool call;
``empty`` → an empty answer; ``missing_choices`` → JSON that is not a message.
A body the real API would refuse (no model, no max_tokens, a turn order it does not
take, an empty turn, a forced tool that is not defined) is a 400, worded like it.
Without a tool, a system prompt that says "Reply with only a JSON object" gets one,
as from a model that does what it is told (the OpenAI fake's ``json_object`` answer).
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import replies
from tests.fakes.script import Effects

# what the operations' system prompts say when they want a JSON object without a schema
JSON_ASKED = "Reply with only a JSON object"

__all__ = ["ERROR_TYPES", "anthropic_error", "chat_view", "invalid", "message_for"]

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


def anthropic_error(status: int, message: str) -> bytes:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return json.dumps({"type": "error", "error": {"type": kind, "message": message},
                       "request_id": "req_fake"}).encode()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def invalid(body: Any) -> str | None:
    """What the real API would say about a body it refuses, or None."""
    if not isinstance(body, dict):
        return "request body is not a JSON object"
    if not body.get("model"):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        return "messages: at least one message is required"
    for number, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            return f"messages.{number}.role: Input should be 'user' or 'assistant'"
        if not _text_of(turn.get("content")).strip():
            return f"messages.{number}: all messages must have non-empty content"
    if turns[0]["role"] != "user":
        return "messages: first message must use the \"user\" role"
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and _tool(body) is None:
        return f"tool_choice: tool {choice.get('name')!r} not found in tools"
    return _native_refused(body)


_NATIVE_REFUSES = ("minimum", "maximum", "minLength", "maxLength", "pattern", "multipleOf")


def _native_refused(body: dict[str, Any]) -> str | None:
    """What the API says about JSON outputs it cannot take: an older model, a schema
    outside its subset."""
    fmt = _output_format(body)
    if fmt is None:
        return None
    if str(body.get("model")).startswith(("claude-3", "claude-sonnet-4-0", "claude-opus-4-0")):
        return f"output_config.format: structured outputs are not supported for model {body.get('model')!r}"
    text = json.dumps(fmt.get("schema"))
    for keyword in _NATIVE_REFUSES:
        if f'"{keyword}"' in text:
            return f"output_config.format.schema: keyword '{keyword}' is not supported"
    if '"type": "object"' in text and '"additionalProperties": false' not in text:
        return "output_config.format.schema: additionalProperties must be false for object types"
    return None


def _tool(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or choice.get("type") != "tool":
        return None
    return next((t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name") == choice.get("name")), None)


def _output_format(body: dict[str, Any]) -> Any:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    return fmt if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    """The Messages body as the chat-completions body ``replies`` reads."""
    messages = [{"role": str(t.get("role")), "content": _text_of(t.get("content"))}
                for t in body.get("messages") or [] if isinstance(t, dict)]
    system = _text_of(body.get("system"))
    if system:
        messages.insert(0, {"role": "system", "content": system})
    view: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    tool = _tool(body)
    if tool is not None:
        view["response_format"] = {"type": "json_schema", "json_schema": {
            "name": tool["name"], "schema": tool.get("input_schema") or {"type": "object"}}}
    elif isinstance(_output_format(body), dict):  # Anthropic's JSON outputs
        view["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": _output_format(body).get("schema") or {"type": "object"}}}
    elif JSON_ASKED in system:  # a model that does what the prompt says
        view["response_format"] = {"type": "json_object"}
    return view


def message_for(body: dict[str, Any], effects: Effects, number: int) -> dict[str, Any] | None:
    """The Message answering ``body`` under ``effects``; None for a body that is not one."""
    fault = effects.fault
    if fault == "missing_choices":
        return None
    view = chat_view(body)
    tool = _tool(body)
    if fault in ("refusal", "content_filter"):
        return _message(body, [{"type": "text", "text": replies.REFUSAL}], "refusal", number)
    content, _ = replies.content_for(view, wrong_label=fault == "wrong_label")
    stop = "tool_use" if tool is not None else "end_turn"
    if fault == "non_json":
        blocks = [{"type": "text", "text": "Sure! Here is what I found: it looks fine to me."}]
        return _message(body, blocks, "end_turn", number)
    if fault == "empty":
        content = "{}" if tool is not None else ""
    elif fault == "truncated":
        content, stop = content[: max(1, len(content) // 2)], "max_tokens"
    if tool is None:
        return _message(body, [{"type": "text", "text": content}], stop, number)
    try:
        given = json.loads(content)
    except ValueError:  # a cut answer: the partial input the API would have parsed
        given = {}
    block = {"type": "tool_use", "id": f"toolu_fake_{number}", "name": tool["name"], "input": given}
    return _message(body, [block], stop, number)


def _message(body: dict[str, Any], blocks: list[dict[str, Any]], stop: str, number: int) -> dict[str, Any]:
    view = chat_view(body)
    read = replies.estimate_tokens(len(replies.prompt_text(view)))
    written = replies.estimate_tokens(len(json.dumps(blocks)))
    return {
        "id": f"msg_fake_{number}", "type": "message", "role": "assistant",
        "model": body.get("model") or "claude-fake", "content": blocks,
        "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": read, "output_tokens": written,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def answer_for(body: dict[str, Any], effects: Effects, number: int) -> tuple[int, bytes]:
    """Status and payload for an answered Messages request (scripted errors first)."""
    if effects.status is not None and effects.status != 200:
        return effects.status, anthropic_error(effects.status, effects.body or
                                               f"fake anthropic scripted status {effects.status}")
    if effects.fault == "malformed":
        return 200, b'{"id": "msg_fake", "type": "message", "content": [{"type": "text", "text": "'
    message = message_for(body, effects, number)
    if message is None:
        return 200, json.dumps({"id": f"msg_fake_{number}", "type": "message"}).encode()
    return 200, json.dumps(message).encode()
