"""What the fake provider says: schema-valid instances and chat-completion bodies.

Pure functions, no I/O, so the server's hot path stays a few dictionary walks. Choices
are deterministic: an enum takes a value containing "neg" when the prompt says something
bad, "pos" when it says something good, else its first value. A json_object request
that carries a ``schema`` (as llama-cpp-python's server accepts) or spells out a JSON
Schema in a message (the provider's fallback for servers without json_schema) is answered
as if that schema had come as json_schema, as a model that follows the instruction would.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

NEGATIVE_WORDS = ("terrible", "awful", "bad", "worst", "hate")
POSITIVE_WORDS = ("amazing", "great", "good", "love", "excellent")
WRONG_LABEL = "not_a_valid_label"
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]+")
_QUOTED_NAME = re.compile(r"[`\"']([A-Za-z_][A-Za-z0-9_]{0,40})[`\"']")
# how the provider introduces the schema in json_object mode (openai_compat._with_schema_note)
SCHEMA_NOTE = "follows this JSON Schema:\n"
_MAX_DEPTH = 12


class Picks:
    """The enum choices made while building one reply (for log-probabilities)."""

    def __init__(self) -> None:
        self.choices: list[tuple[str, list[str]]] = []


def pick_choice(values: list[Any], text: str) -> Any:
    """The deterministic enum choice for a prompt ``text`` (already lower-cased)."""
    wanted = None
    if any(word in text for word in NEGATIVE_WORDS):
        wanted = "neg"
    elif any(word in text for word in POSITIVE_WORDS):
        wanted = "pos"
    if wanted is not None:
        for value in values:
            if wanted in str(value).lower():
                return value
    return values[0]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    for _ in range(_MAX_DEPTH):
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = target if isinstance(target, dict) else {}
        ref = schema.get("$ref")
    return schema


def _schema_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


class Generator:
    """Builds one instance of a JSON Schema for one prompt."""

    def __init__(
        self, root: dict[str, Any], text: str, *, wrong_label: bool = False, number: float = 0.9
    ) -> None:
        self.root = root
        self.text = text
        self.wrong_label = wrong_label
        self.number = number
        self.picks = Picks()

    def instance(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return f"sample {name}".strip()
        schema = _resolve(schema, self.root)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                return self.instance((usable or options)[0], name, depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(_resolve(part, self.root) if isinstance(part, dict) else {})
            merged.update({k: v for k, v in schema.items() if k != "allOf"})
            return self.instance(merged, name, depth + 1)
        return self._typed(schema, _schema_type(schema), name, depth)

    def _choice(self, values: list[Any]) -> Any:
        if self.wrong_label:
            return WRONG_LABEL
        chosen = pick_choice(values, self.text)
        self.picks.choices.append((str(chosen), [str(v) for v in values if v != chosen]))
        return chosen

    def _typed(self, schema: dict[str, Any], kind: str, name: str, depth: int) -> Any:
        if kind == "object":
            props = schema.get("properties") or {}
            out = {key: self.instance(sub, key, depth + 1) for key, sub in props.items()}
            for key in schema.get("required") or []:
                out.setdefault(key, f"sample {key}")
            return out
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return int(_number(schema, 3.0, integer=True))
        if kind == "number":
            return _number(schema, self.number, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema, name)

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        count = max(1, int(schema.get("minItems", 1)))
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        items = _resolve(schema.get("items") or {}, self.root)
        values = items.get("enum") if isinstance(items, dict) else None
        if schema.get("uniqueItems") and isinstance(values, list) and not self.wrong_label:
            return list(values[:count])
        return [self.instance(items, name, depth + 1) for _ in range(count)]


def _number(schema: dict[str, Any], preferred: float, *, integer: bool) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value = preferred
    if isinstance(low, int | float) and value < low:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, int | float) and value > high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    if integer:
        value = math.floor(value)
    return value


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return "2024-01-02"
    if fmt == "date-time":
        return "2024-01-02T03:04:05Z"
    if fmt == "email":
        return "someone@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com/"
    text = f"sample {name}".strip() if name else "sample text"
    low = int(schema.get("minLength", 0))
    if len(text) < low:
        text = text + "x" * (low - len(text))
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text


def prompt_text(body: dict[str, Any]) -> str:
    """All message contents of a request, joined (what ``match`` rules look at)."""
    parts: list[str] = []
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


SELF_ESTIMATE_WITH_LOGPROBS = 0.5
REFUSAL = "I can't help with that."


def content_for(body: dict[str, Any], *, wrong_label: bool = False) -> tuple[str, Picks]:
    """The assistant's text for a request, shaped by its ``response_format``."""
    fmt = body.get("response_format") or {}
    user = last_user_text(body).lower()
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    schema = None
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        schema = schema if isinstance(schema, dict) else {"type": "object"}
    elif kind in ("json_object", None):
        # json_object's own schema (llama-cpp-python's server takes one), else a schema
        # spelled out in a message, is followed, with or without JSON mode
        given = fmt.get("schema") if isinstance(fmt, dict) else None
        schema = given if isinstance(given, dict) else noted_schema(body)
    if schema is not None:
        # A request that asks for logprobs gets a self-estimated number (0.5) unlike the
        # chosen token's probability (0.9, see logprobs_for), so a test can tell which
        # of the two a label's confidence came from.
        number = SELF_ESTIMATE_WITH_LOGPROBS if body.get("logprobs") else 0.9
        gen = Generator(schema, user, wrong_label=wrong_label, number=number)
        return json.dumps(gen.instance(schema), separators=(",", ":")), gen.picks
    if kind == "json_object":
        names = _QUOTED_NAME.findall(prompt_text(body))[:8]
        obj: dict[str, Any] = {n: f"sample {n}" for n in dict.fromkeys(names)} or {"result": "sample"}
        if wrong_label:
            obj = {"label": WRONG_LABEL}
        return json.dumps(obj, separators=(",", ":")), Picks()
    if wrong_label:
        return WRONG_LABEL, Picks()
    return f"Fake reply about: {user[:60]}", Picks()


def noted_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a message spells out after ``SCHEMA_NOTE``, if one does."""
    text = prompt_text(body)
    start = text.find(SCHEMA_NOTE)
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(text, start + len(SCHEMA_NOTE))
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def logprobs_for(content: str, picks: Picks, top: int) -> dict[str, Any]:
    """OpenAI-style ``logprobs.content`` with ``top_logprobs`` on every token.

    A token that starts a chosen enum value gets probability 0.9 and its rivals share
    the rest, so label confidence from log-probabilities is observable in tests.
    """
    rivals = {choice: others for choice, others in picks.choices}
    tokens = _TOKEN.findall(content) or [content]
    out: list[dict[str, Any]] = []
    for token in tokens:
        match = next((c for c in rivals if c.startswith(token) and token.strip()), None)
        if match is not None:
            others = rivals[match]
            rest = math.log(0.1 / len(others)) if others else -9.0
            entries = [(match, math.log(0.9)), *((o, rest) for o in others)]
            chosen = math.log(0.9)
        else:
            entries = [(token, -0.001), (token.upper() if token.upper() != token else "x", -7.0)]
            chosen = -0.001
        tops = [{"token": t, "logprob": lp, "bytes": None} for t, lp in entries[: max(1, top)]]
        out.append({"token": token, "logprob": chosen, "bytes": None, "top_logprobs": tops})
    return {"content": out}


def estimate_tokens(chars: int) -> int:
    return max(1, chars // 4)


def completion_body(
    body: dict[str, Any],
    content: str | None,
    *,
    number: int,
    finish_reason: str = "stop",
    logprobs: dict[str, Any] | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    """The chat-completion envelope around ``content`` (None when the model declined)."""
    prompt_tokens = estimate_tokens(len(prompt_text(body)))
    completion_tokens = estimate_tokens(len(content or refusal or ""))
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": logprobs,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
