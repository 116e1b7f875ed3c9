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
- ``structured_output: native`` (a profile's choice, for Claude models that have it:
  the 4.5 generation on) sends Anthropic's own JSON outputs instead,
  ``output_config.format``, and the reply is a text block of JSON. That saves the tool
  use system prompt Anthropic adds to every request with a tool (some 235-340 input
  tokens by its own table, more than a label request's own prompt) but fails every
  request on an older model. Its schema subset has no numeric, length or pattern
  constraints and wants ``additionalProperties: false`` on every object, so
  ``native_schema`` drops the constraints and closes the objects: the operation still
  validates each reply against the full schema and re-asks once, as for any provider.
- ``logprobs`` do not exist in this API and are not sent: a label's confidence is then
  the model's own estimate, as with any provider that sends none.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentflow_jobs.chat import ChatRequest
from agentflow_jobs.errors import ProviderError

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "STRUCTURED_OUTPUTS",
    "TOOL_DESCRIPTION",
    "MessageBodies",
    "message_body",
    "native_schema",
    "structured_part",
    "tool_name",
]

ANTHROPIC_VERSION = "2023-06-01"
# The reply budget when the operation gives none (a custom `run`): the largest output
# every Claude model accepts (Claude 3 Haiku and Opus stop at 4,096), so no model
# refuses it; the bill counts the tokens written, not this budget.
DEFAULT_MAX_TOKENS = 4096
TOOL_DESCRIPTION = "Record your answer: call this tool once, with the answer as its input."
# a profile's provider.structured_output: the forced tool (default) or Anthropic's own
STRUCTURED_OUTPUTS = ("tool", "native")
# constraints Anthropic's JSON outputs refuse (the operation checks them on the reply)
_UNSUPPORTED = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
                          "minLength", "maxLength", "pattern", "maxItems", "uniqueItems",
                          "minProperties", "maxProperties"})
# distinct formats and tails kept (one or two per request in practice)
_CACHE_SIZE = 64
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


def message_body(request: ChatRequest, default_model: str | None, default_max_tokens: int,
                 *, native: bool = False) -> dict[str, Any]:
    """The Messages API body for ``request`` (see the module doc); ``native``: structured
    output as ``output_config.format`` rather than a forced tool."""
    return _body(request, default_model, default_max_tokens, structured_part(request.response_format, native))


def structured_part(fmt: dict[str, Any] | None, native: bool) -> dict[str, Any]:
    """The keys that ask for ``fmt``: ``tools`` and ``tool_choice``, or ``output_config``."""
    name = tool_name(fmt)
    if name is None:
        return {}
    if native:
        return {"output_config": {"format": {"type": "json_schema", "schema": native_schema(_schema(fmt or {}))}}}
    tool = {"name": name, "description": TOOL_DESCRIPTION, "input_schema": _schema(fmt or {})}
    return {"tools": [tool], "tool_choice": {"type": "tool", "name": name}}


def _body(request: ChatRequest, default_model: str | None, default_max_tokens: int,
          structured: dict[str, Any]) -> dict[str, Any]:
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
    body.update(structured)
    return body


class MessageBodies:
    """``message_body`` for one provider, with what every item of a request shares (the
    structured-output part, the encoded settings and system prompt) built once: the same
    idea as ``openai_request.RequestBodies.encode``, for the same per-request CPU."""

    def __init__(self, default_model: str | None, default_max_tokens: int, *, native: bool = False) -> None:
        self.default_model, self.default_max_tokens, self.native = default_model, default_max_tokens, native
        # id(response format) -> (it, its structured part); id(part) -> (part, encoded tails)
        self._parts: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._tails: dict[tuple[Any, ...], tuple[Any, bytes]] = {}

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        fmt = request.response_format
        found = self._parts.get(id(fmt))
        if found is None or found[0] is not fmt:
            if len(self._parts) >= _CACHE_SIZE:
                self._parts.clear()
            found = self._parts[id(fmt)] = (fmt, structured_part(fmt, self.native))
        return _body(request, self.default_model, self.default_max_tokens, found[1])

    def encode(self, body: dict[str, Any]) -> bytes:
        """``encode(body)``, everything but the turns encoded once per distinct tail."""
        part = body.get("tools") or body.get("output_config")
        key = (id(part), body.get("model"), body.get("max_tokens"), body.get("temperature"),
               body.get("system"), tuple(body))
        cached = self._tails.get(key)
        if cached is None or cached[0] is not part:
            tail = {k: v for k, v in body.items() if k != "messages"}
            if len(self._tails) >= _CACHE_SIZE:
                self._tails.clear()
            cached = self._tails[key] = (part, (", " + json.dumps(tail, ensure_ascii=False)[1:]).encode())
        turns = json.dumps(body["messages"], ensure_ascii=False).encode()
        return b'{"messages": ' + turns + cached[1]


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


def native_schema(schema: Any) -> Any:
    """``schema`` in the subset Anthropic's JSON outputs take (see the module doc)."""
    if isinstance(schema, list):
        return [native_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNSUPPORTED or (key == "minItems" and isinstance(value, int) and value > 1):
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: native_schema(sub) for name, sub in value.items()}
        else:
            out[key] = native_schema(value) if isinstance(value, dict | list) else value
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
    return out
