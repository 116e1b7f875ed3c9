"""The JSON bodies an OpenAI-compatible provider sends, and what to leave out of them.

``RequestBodies.payload`` turns a ``ChatRequest`` into the chat-completions body;
``encode`` writes it as bytes, encoding the parts every item of a request shares (the
system prompt, the response format and the other settings after the messages) once.

A model whose server says it cannot take ``response_format: json_schema`` gets
``json_object`` instead, carrying the schema (``{"type": "json_object", "schema": ...}``,
which llama-cpp-python's server turns into a grammar, so a ``type`` list goes as one
``anyOf`` branch per type: ``schema_grammar``) and with the schema also written into a
system message for servers that ignore it; a server that then refuses the
``schema`` key gets plain ``json_object``. ``refused`` reads that from what the error
body says, whatever the status: a 400 or 422, and also a 500, since llama-cpp-python's
server answers ``json_schema`` with HTTP 500 naming ``response_format``. The bodies
remember it for the model, since support differs per model. An error about the schema
itself (OpenAI's "Invalid schema for response_format ...") is the request's own error,
not a fallback. Likewise a model whose server refuses
``logprobs``/``top_logprobs`` gets the request without them (label confidence then comes
from the model's own estimate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import structlog

from agentflow_jobs.chat import ChatRequest
from agentflow_jobs.providers.schema_grammar import one_type_each

__all__ = ["DEFAULT_OUTPUT_TOKENS", "RequestBodies", "estimate_tokens"]

log = structlog.get_logger(__name__)

# reserved against tokens_per_minute when a request does not say its max_tokens
DEFAULT_OUTPUT_TOKENS = 512
# one object for every fallback request: encode caches the encoded tail by its id
_JSON_OBJECT: dict[str, Any] = {"type": "json_object"}
# the statuses whose body may say a feature is refused (a 500: llama-cpp-python's server)
_REFUSAL_STATUSES = frozenset({400, 422, 500})
# distinct encoded tails and system messages kept (one or two per request in practice)
_CACHE_SIZE = 64


class RequestBodies:
    """The bodies one provider sends: its fallbacks per model, its encoding caches."""

    def __init__(self) -> None:
        # feature -> the models whose server refused it; payload() leaves it out for them
        self._unsupported: dict[str, set[str | None]] = {feature: set() for feature in _REFUSED}
        self._tails: dict[tuple[Any, ...], tuple[Any, bytes]] = {}
        self._systems: dict[tuple[tuple[str, Any], ...], str] = {}
        # id of a json_schema format -> (it, its json_object fallback): one object each
        self._fallbacks: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        # bumped whenever a refusal is learned: a body built under an older version may
        # carry a feature its model's server has since refused, and is built again
        self.version = 0

    def payload(self, request: ChatRequest, default_model: str | None) -> dict[str, Any]:
        """The JSON body for ``request``, leaving out what its model's server refused."""
        messages = list(request.messages)
        payload: dict[str, Any] = {"messages": messages}
        model = request.model or default_model or None
        if model:
            payload["model"] = model
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.max_tokens:
            payload["max_tokens"] = request.max_tokens
        fmt = request.response_format
        if fmt and fmt.get("type") == "json_schema" and model in self._unsupported["json_schema"]:
            payload["messages"] = _with_schema_note(messages, fmt)
            fmt = _JSON_OBJECT if model in self._unsupported["json_object_schema"] else self._fallback(fmt)
        if fmt and "schema" in fmt and fmt.get("type") == "json_object" and (
                model in self._unsupported["json_object_schema"]):
            fmt = _JSON_OBJECT  # the caller's own json_object with a schema: without it
        if fmt and fmt.get("type") == "json_object" and model in self._unsupported["json_object"]:
            # no response_format at all (the schema note, if any, stays): the operations
            # read a JSON object out of a plain reply and validate it all the same
            fmt = None
        if fmt:
            payload["response_format"] = fmt
        if request.logprobs and model not in self._unsupported["logprobs"]:
            payload["logprobs"] = True
            if request.top_logprobs:
                payload["top_logprobs"] = request.top_logprobs
        return payload

    def _fallback(self, fmt: dict[str, Any]) -> dict[str, Any]:
        """``json_object`` with ``fmt``'s schema, the same object for the same ``fmt``."""
        found = self._fallbacks.get(id(fmt))
        if found is None or found[0] is not fmt:
            if len(self._fallbacks) >= _CACHE_SIZE:
                self._fallbacks.clear()
            # the server builds a grammar from it: one type per branch keeps each type's bounds
            schema = one_type_each(_schema_of(fmt))
            found = self._fallbacks[id(fmt)] = (fmt, {**_JSON_OBJECT, "schema": schema})
        return found[1]

    def refused(self, status: int, body: str, payload: dict[str, Any]) -> frozenset[str]:
        """The features of ``payload`` an error answer says its model cannot take; they
        are left out of that model's payloads from now on."""
        features = _refused_features(status, body, payload)
        model = payload.get("model")
        for feature in features:
            if model not in self._unsupported[feature]:
                self._unsupported[feature].add(model)
                self.version += 1
                # the replies may differ from now on (a schema asked for in the prompt)
                log.warning("the model's server refused a request feature: sent without it from now on",
                            feature=feature, model=model, status=status)
        return features

    def encode(self, payload: dict[str, Any]) -> bytes:
        """``json.dumps(payload).encode()``, with everything after the messages encoded
        once per distinct tail (one per request in practice, the schema being the bulk)."""
        tail = {k: v for k, v in payload.items() if k != "messages"}
        fmt = tail.get("response_format")
        key = (id(fmt), tail.get("model"), tail.get("temperature"), tail.get("max_tokens"),
               tail.get("logprobs"), tail.get("top_logprobs"), tuple(tail))
        cached = self._tails.get(key)
        # the format object is kept in the entry: its id is only a key while it lives
        if cached is None or cached[0] is not fmt:
            encoded = json.dumps(tail)
            suffix = (", " + encoded[1:] if tail else "}").encode()
            if len(self._tails) >= _CACHE_SIZE:
                self._tails.clear()
            cached = self._tails[key] = (fmt, suffix)
        messages = ", ".join(map(self._message_json, payload["messages"]))
        return b'{"messages": [' + messages.encode() + b"]" + cached[1]

    def _message_json(self, message: dict[str, Any]) -> str:
        """One message as JSON; the system prompt (the same for every item) encoded once."""
        role, content = message.get("role"), message.get("content")
        # json.dumps(message) byte for byte (role first, as built), with the string encoder
        # alone: the dict encoder took twice as long for every item's request
        if role != "system" and _role_and_content(message, role, content):
            return f'{{"role": {json.dumps(role)}, "content": {json.dumps(content)}}}'
        if role != "system" or not all(isinstance(v, str) for v in message.values()):
            return json.dumps(message)
        key = tuple(message.items())  # key order is part of the JSON
        found = self._systems.get(key)
        if found is None:
            if len(self._systems) >= _CACHE_SIZE:
                self._systems.clear()
            found = self._systems[key] = json.dumps(message)
        return found


def _role_and_content(message: dict[str, Any], role: Any, content: Any) -> bool:
    """Whether ``message`` is exactly ``{"role": str, "content": str}``, in that order."""
    return len(message) == 2 and type(role) is str and type(content) is str and next(iter(message)) == "role"


def estimate_tokens(payload: dict[str, Any]) -> int:
    """Tokens a request may use (prompt by characters, plus its reply budget)."""
    chars = sum(len(str(m.get("content") or "")) for m in payload["messages"])
    return chars // 4 + 1 + int(payload.get("max_tokens") or DEFAULT_OUTPUT_TOKENS)


# How servers say they cannot take a parameter or one of its values: OpenAI, Azure,
# vLLM and other pydantic-based servers, TGI (serde), LiteLLM, Groq, DeepSeek, Gemini.
_REFUSAL = (
    r"unsupported|n[o']t (?:support|enabled|available|allowed|permitted|recogni[sz]ed)"
    r"|unavailable|unknown|unrecogni[sz]ed|unexpected|must be one of|supported values"
    r"|invalid value|input should be '|extra (?:inputs|fields)|enabled only|max allowed"
)


def _refusal_of(subject: str) -> re.Pattern[str]:
    """The subject and a refusal close together, in either order: a server's message
    names the parameter next to its complaint (pydantic puts the complaint after the
    parameter's location, LiteLLM before the parameter's name)."""
    near = ".{0,60}?"
    return re.compile(f"(?:{subject}){near}(?:{_REFUSAL})|(?:{_REFUSAL}){near}(?:{subject})", re.S)


_REFUSED = {
    "json_schema": _refusal_of("json_schema|response_format"),
    # a server that takes no response_format at all (LiteLLM: "does not support
    # parameters: ['response_format']") refuses json_object too: then none is sent
    "json_object": _refusal_of("json_object|response_format"),
    # a json_object with a schema key: a server that wants none there (its name for it)
    "json_object_schema": _refusal_of(r"\bschema\b"),
    "logprobs": _refusal_of("logprobs"),
}
# The schema itself is wrong (OpenAI: "Invalid schema for response_format 'x': In
# context=(...), ..."): the request's own error, whatever words follow.
_SCHEMA_ERROR = re.compile(r"invalid[ _](?:json[ _])?schema|schema is invalid|json_schema\.schema|in context=")


def _refused_features(status: int, body: str, payload: dict[str, Any]) -> frozenset[str]:
    """The features of ``payload`` that a 400/422/500 ``body`` says the model cannot take."""
    if status not in _REFUSAL_STATUSES:
        return frozenset()
    lowered = body.lower()
    if _SCHEMA_ERROR.search(lowered):
        return frozenset()
    found = {f for f in _sent_features(payload) if _REFUSED[f].search(lowered)}
    if "json_object_schema" in found:
        # a complaint naming the schema key is about that key: json_object itself may
        # be fine, and if not, the next request (without the key) says so
        found.discard("json_object")
    return frozenset(found)


def _sent_features(payload: dict[str, Any]) -> Iterator[str]:
    fmt = payload.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        yield "json_schema"
    if fmt.get("type") == "json_object":
        yield "json_object"
        if "schema" in fmt:
            yield "json_object_schema"
    if payload.get("logprobs"):
        yield "logprobs"


def _with_schema_note(messages: list[dict[str, str]], fmt: dict[str, Any]) -> list[dict[str, str]]:
    """Say the schema in words: json_object mode only promises *some* JSON object."""
    note = "Reply with one JSON object that follows this JSON Schema:\n" + json.dumps(_schema_of(fmt))
    return [{"role": "system", "content": note}, *messages]


def _schema_of(fmt: dict[str, Any]) -> Any:
    spec = fmt.get("json_schema") or {}
    return spec.get("schema", spec) if isinstance(spec, dict) else spec
