"""The JSON body of an Anthropic Messages request (``POST /v1/messages``) for a ChatRequest.

The same body is one Message Batches line's ``params``, so sync and batch send alike.

- System messages become the top-level ``system`` string; the other turns go in
  ``messages``, an empty turn dropped and consecutive turns of one role joined (the
  API wants non-empty content; an operation's re-ask may carry an empty bad reply).
- ``max_tokens`` is required by the API: the operation's own, else the provider's
  default (``DEFAULT_MAX_TOKENS``, a profile's ``max_tokens`` wins).
- Structured output is a forced tool call: a ``json_schema`` response format becomes
  one tool whose ``input_schema`` is the schema, and ``tool_choice`` names it, so the
  reply is a ``tool_use`` block whose ``input`` is the JSON object (``anthropic_reply``
  turns it back into text). It works on every Claude model and takes any JSON Schema
  as it is; Anthropic's native structured output (``output_config.format``) exists
  only on newer models and refuses common schema keywords (``minimum``, ``maxLength``,
  ...) that our operations' schemas use. ``json_object`` (no schema) asks for plain
  text: the operations' prompts ask for a JSON object and read it out of the text
  (a forced tool with an empty schema invites an empty ``{}``).
- ``logprobs`` do not exist in this API and are not sent: a label's confidence is then
  the model's own estimate, as with any provider that sends none.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentflow_jobs.chat import ChatRequest
from agentflow_jobs.errors import ProviderError

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "TOOL_DESCRIPTION", "message_body", "tool_name"]

ANTHROPIC_VERSION = "2023-06-01"
# The reply budget when the operation gives none (a custom `run`): the largest output
# every Claude model accepts (Claude 3 Haiku and Opus stop at 4,096), so no model
# refuses it; the bill counts the tokens written, not this budget.
DEFAULT_MAX_TOKENS = 4096
TOOL_DESCRIPTION = "Record your answer: call this tool once, with the answer as its input."
# Anthropic's rule for tool names
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def tool_name(fmt: dict[str, Any] | None) -> str | None:
    """The forced tool's name for a response format, or None when no tool is sent."""
    if not fmt or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema") or {}
    raw = spec.get("name") if isinstance(spec, dict) else None
    name = _TOOL_NAME.sub("_", str(raw or "answer"))[:64].strip("_")
    return name or "answer"


def message_body(request: ChatRequest, default_model: str | None, default_max_tokens: int) -> dict[str, Any]:
    """The Messages API body for ``request`` (see the module doc)."""
    model = request.model or default_model
    if not model:
        raise ProviderError("no model to ask: set provider.model in the profile or pass model=",
                            code="bad_request", retryable=False)
    system, turns = _split(request.messages)
    body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens or default_max_tokens}
    if system:
        body["system"] = system
    body["messages"] = turns
    if request.temperature is not None:
        body["temperature"] = min(1.0, max(0.0, request.temperature))  # Anthropic's range
    name = tool_name(request.response_format)
    if name is not None:
        body["tools"] = [{"name": name, "description": TOOL_DESCRIPTION,
                          "input_schema": _schema(request.response_format or {})}]
        body["tool_choice"] = {"type": "tool", "name": name}
    return body


def _split(messages: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
    """The system text, and the other turns with empty ones dropped and runs joined."""
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for message in messages:
        role, content = message.get("role"), message.get("content") or ""
        if role == "system":
            system.append(content)
            continue
        if not content.strip():
            continue
        role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": turns[-1]["content"] + "\n\n" + content}
        else:
            turns.append({"role": role, "content": content})
    if turns and turns[0]["role"] == "assistant":  # the API wants a user turn first
        turns.insert(0, {"role": "user", "content": "(continue)"})
    return "\n\n".join(s for s in system if s), turns


def _schema(fmt: dict[str, Any]) -> dict[str, Any]:
    spec = fmt.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return {"type": "object"}  # input_schema must describe an object
    return schema


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()
