"""Token estimates for ``plan``, before anything is sent. Pure.

No tokenizer is available offline here (tiktoken downloads its BPE files on first use;
Anthropic publishes none), so prompts are counted by a stated heuristic,
``PROMPT_TOKEN_METHOD``: one token per 4 bytes of UTF-8 (English averages about 4
characters a token; counting bytes keeps CJK text, about one token a character, from
being undercounted fourfold), plus 4 tokens per message for the chat framing and 3 for
the reply's priming, plus what the provider adds to each request on its own
(``request_overhead_tokens``: Anthropic's tool-use system prompt).

Output tokens come from the shape the operation asks for (``OUTPUT_TOKEN_METHOD``):
label → the label JSON with the longest category; enrich → one key and a typical value
per field; extract → one key and a typical value per schema property; summarize → a
summary of a few sentences (128 tokens: ``max_tokens`` is its ceiling, and a summary
rarely comes near it); run → ``max_tokens``, else 512. Never above ``max_tokens``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from agentflow_jobs.wire import EnrichField

__all__ = [
    "OUTPUT_TOKEN_METHOD",
    "PROMPT_TOKEN_METHOD",
    "estimate_output_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "request_overhead_tokens",
]

PROMPT_TOKEN_METHOD = "heuristic: 4 UTF-8 bytes per token + 4 per message"
OUTPUT_TOKEN_METHOD = "from the output shape and max_tokens"

_BYTES_PER_TOKEN = 4
_PER_MESSAGE = 4
_REPLY_PRIMING = 3
_JSON_FRAME = 2  # the braces around a JSON object
# Anthropic's tool-use system prompt with tool_choice "tool", by its own table (235-340
# by model): the top of the range, so an estimate does not fall short
TOOL_PROMPT_TOKENS = 340
_DEFAULT_OUTPUT = {"summarize": 128, "run": 512}
_CONTEXT_TOKENS = 32  # one sentence of justification per enrich field
# a typical value of each type, in tokens
_VALUE_TOKENS = {
    "string": 16,
    "number": 3,
    "integer": 2,
    "boolean": 1,
    "null": 1,
    "list": 24,
    "array": 24,
}


def estimate_text_tokens(text: str) -> int:
    """Tokens in ``text`` by the byte heuristic; 0 for the empty string."""
    return math.ceil(len(text.encode("utf-8")) / _BYTES_PER_TOKEN)


def request_overhead_tokens(provider: Mapping[str, Any] | None, *, asks_schema: bool) -> int:
    """Input tokens a provider adds to each request on its own: Anthropic's tool-use system
    prompt when structured output is a forced tool (``TOOL_PROMPT_TOKENS``), else 0."""
    if not provider or provider.get("type") != "anthropic" or not asks_schema:
        return 0
    return TOOL_PROMPT_TOKENS if (provider.get("structured_output") or "tool") == "tool" else 0


def estimate_prompt_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """Input tokens of one rendered chat request (see ``PROMPT_TOKEN_METHOD``)."""
    if not messages:
        return 0
    body = sum(estimate_text_tokens(m.get("content", "")) for m in messages)
    return body + _PER_MESSAGE * len(messages) + _REPLY_PRIMING


def estimate_output_tokens(
    operation_kind: str,
    *,
    categories: Sequence[str] | None = None,
    fields: Sequence[EnrichField] | None = None,
    output_schema: Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
    include_context: bool = False,
) -> int:
    """Output tokens of one answer of ``operation_kind`` (see the module docstring)."""
    if operation_kind == "label":
        guess = _label_tokens(categories or ())
    elif operation_kind == "enrich":
        guess = _enrich_tokens(fields or (), include_context=include_context)
    elif operation_kind == "extract":
        guess = _schema_tokens(output_schema or {})
    elif operation_kind == "summarize":
        guess = _DEFAULT_OUTPUT["summarize"]
    else:
        guess = max_tokens if max_tokens is not None else _DEFAULT_OUTPUT.get(operation_kind, 512)
    return guess if max_tokens is None else min(guess, max_tokens)


def _label_tokens(categories: Sequence[str]) -> int:
    longest = max(categories, key=len, default="category")
    reply = json.dumps({"label": longest, "confidence": 0.95}, ensure_ascii=False)
    return estimate_text_tokens(reply)


def _enrich_tokens(fields: Sequence[EnrichField], *, include_context: bool) -> int:
    total = _JSON_FRAME
    for field in fields:
        total += _key_tokens(field.name)
        if field.type == "categorical" and field.valid_values:
            total += _longest_value_tokens(field.valid_values)
        else:
            total += _VALUE_TOKENS.get(field.type, _VALUE_TOKENS["string"])
        if include_context:
            total += _key_tokens(f"{field.name}_context") + _CONTEXT_TOKENS
    return total


def _schema_tokens(schema: Mapping[str, Any]) -> int:
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        return _JSON_FRAME + sum(
            _key_tokens(str(name)) + _schema_tokens(sub if isinstance(sub, Mapping) else {})
            for name, sub in properties.items()
        )
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return _longest_value_tokens([json.dumps(v, ensure_ascii=False) for v in schema["enum"]])
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return 3 * _schema_tokens(schema["items"]) + 1  # a guessed three items
    return (
        _VALUE_TOKENS.get(kind, _VALUE_TOKENS["string"])
        if isinstance(kind, str)
        else _VALUE_TOKENS["string"]
    )


def _key_tokens(name: str) -> int:
    return estimate_text_tokens(json.dumps(name, ensure_ascii=False) + ": ,")


def _longest_value_tokens(values: Sequence[str]) -> int:
    return estimate_text_tokens(json.dumps(max(values, key=len), ensure_ascii=False))
