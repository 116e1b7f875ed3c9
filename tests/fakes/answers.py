"""What the fake provider answers to one request: status, JSON body and headers.

``reply_for`` applies the merged rules (``script.Effects``) to a chat request: a
scripted status with an OpenAI-shaped error body (and any scripted headers, e.g.
``x-ratelimit-remaining-requests: 0`` on a 429), a rejected feature the way real servers
word it (``REJECTIONS``; ``reject_json_schema_500`` as llama-cpp-python's server does
it), a broken 200, or a completion built by ``replies``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import replies
from tests.fakes.script import Effects

__all__ = ["LLAMA_CPP_JSON_SCHEMA", "REJECTIONS", "error_json", "reply_for"]

# fault -> the parameter a server without the feature names, and OpenAI's message
# llama-cpp-python's server (0.3.x) refusing json_schema: HTTP 500, pydantic's message
LLAMA_CPP_JSON_SCHEMA = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"llama_cpp/server/app.py\", "
    "line 376, in create_chat_completion\n    POST /v1/chat/completions"
)
REJECTIONS = {
    "reject_json_schema": (
        "response_format", "Invalid parameter: response_format of type 'json_schema' is not supported with this model."),
    "reject_logprobs": ("logprobs", "Unsupported parameter: 'logprobs' is not supported with this model."),
}


def error_json(message: str, status: int = 400) -> bytes:
    kind = {429: "rate_limit_error", 401: "authentication_error"}.get(status, "invalid_request_error")
    if status >= 500:
        kind = "server_error"
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


def _refusal(effects: Effects) -> tuple[int, bytes] | None:
    """A scripted error status, or a request feature refused as a real server words it."""
    if effects.status is not None and effects.status != 200:
        if effects.body and effects.body.lstrip().startswith("{"):  # a whole error body, as given
            return effects.status, effects.body.encode()
        message = effects.body or f"fake provider scripted status {effects.status}"
        return effects.status, error_json(message, effects.status)
    if effects.fault == "reject_json_schema_500":
        return 500, json.dumps({"error": {"message": effects.body or LLAMA_CPP_JSON_SCHEMA,
                                          "type": "internal_server_error", "param": None,
                                          "code": None}}).encode()
    if effects.fault in REJECTIONS:
        param, default = REJECTIONS[effects.fault]
        return 400, json.dumps({"error": {"message": effects.body or default, "type": "invalid_request_error",
                                          "param": param, "code": None}}).encode()
    return None


def reply_for(body: dict[str, Any], effects: Effects, number: int) -> tuple[int, bytes, dict[str, str]]:
    """Status, payload and headers of an answered request."""
    headers: dict[str, str] = dict(effects.headers or {})
    if effects.retry_after is not None:
        headers["retry-after"] = f"{effects.retry_after:g}"
    if effects.retry_after_ms is not None:
        headers["retry-after-ms"] = f"{effects.retry_after_ms:g}"
    refused = _refusal(effects)
    if refused is not None:
        return refused[0], refused[1], headers
    fault = effects.fault
    if fault == "malformed":
        return 200, b'{"id": "chatcmpl-fake", "choices": [{"message": {"content": "', headers
    if fault == "missing_choices":
        return 200, json.dumps({"id": f"chatcmpl-fake-{number}", "object": "chat.completion"}).encode(), headers
    if fault == "refusal":
        reply = replies.completion_body(body, None, number=number, refusal=replies.REFUSAL)
        return 200, json.dumps(reply).encode(), headers
    if fault == "content_filter":
        reply = replies.completion_body(body, None, number=number, finish_reason="content_filter")
        return 200, json.dumps(reply).encode(), headers
    content, picks = replies.content_for(body, wrong_label=fault == "wrong_label")
    finish = "stop"
    if fault == "non_json":
        content = "Sure! Here is what I found: it looks fine to me."
    elif fault == "empty":
        content = ""
    elif fault == "truncated":
        content, finish = content[: max(1, len(content) // 2)], "length"
    logprobs = None
    if effects.logprobs:
        logprobs = replies.logprobs_for(content, picks, int(body.get("top_logprobs") or 5))
    reply = replies.completion_body(body, content, number=number, finish_reason=finish, logprobs=logprobs)
    return 200, json.dumps(reply).encode(), headers
