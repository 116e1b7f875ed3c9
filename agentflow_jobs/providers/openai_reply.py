"""An OpenAI chat-completion reply body as a ``ChatReply``.

The text of the first choice (structured content as JSON), the token counts (a count
that is not a whole number >= 0 taken as 0), the per-token log-probabilities when asked
for, and why the model gave no answer when it declined (its refusal text, or the content
filter). A body that is not JSON or has no choices is a retryable ``ProviderError``.
"""

from __future__ import annotations

import json
from typing import Any

from agentflow_jobs.chat import ChatReply, TokenLogprob
from agentflow_jobs.providers.failures import malformed_failure
from agentflow_jobs.wire import Usage

__all__ = ["CONTENT_FILTERED", "parse_reply"]

# ChatReply.refusal when the content filter stopped a reply that gave no reason
CONTENT_FILTERED = "the provider's content filter stopped the reply"
_INF = float("inf")


def parse_reply(body: bytes, *, where: str = "provider", secret: str | None = None) -> ChatReply:
    """A chat-completion body as a ChatReply; unusable bodies are retryable errors."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # nesting deep enough to exhaust the parser too
        raise malformed_failure("malformed JSON", text, where=where, secret=secret) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed_failure("no choices", text, where=where, secret=secret)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    content = message.get("content")
    finish_reason = choice.get("finish_reason")
    return ChatReply(
        text=_text(content),
        usage=_usage(data.get("usage")),
        finish_reason=finish_reason,
        model=data.get("model"),
        logprobs=_logprobs(choice.get("logprobs")),
        refusal=_refusal(message.get("refusal"), finish_reason),
    )


def _text(content: Any) -> str:
    """The reply's text: a string as it is; a list of content parts (some gateways and
    reasoning models send ``[{"type": "text", "text": ...}]``) as its text parts joined;
    anything else as JSON, for the operation to judge."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        texts = [p["text"] for p in content if p.get("type", "text") == "text" and isinstance(p.get("text"), str)]
        if texts:
            return "".join(texts)
    return json.dumps(content)


def _refusal(text: Any, finish_reason: Any) -> str | None:
    """Why the model gave no answer, if it declined: its own words, else the content
    filter; an empty reply alone is not a refusal (the operation judges that)."""
    if isinstance(text, str) and text:
        return text
    if finish_reason == "content_filter":
        return CONTENT_FILTERED
    return None


def _usage(raw: Any) -> Usage:
    """The reply's token counts; a count that is not a whole number >= 0 is taken as 0
    (a provider's odd bookkeeping must not fail an item it answered)."""
    if not isinstance(raw, dict):
        return Usage(requests=1)
    prompt = _count(raw.get("prompt_tokens"))
    completion = _count(raw.get("completion_tokens"))
    total = _count(raw.get("total_tokens")) or prompt + completion
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total, requests=1)


def _count(value: Any) -> int:
    if type(value) is int:  # the usual case, checked first
        return value if value > 0 else 0
    if not isinstance(value, float) or value != value or value in (_INF, -_INF):  # NaN, ±inf
        return 0
    return max(0, int(value))


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    """The tokens' log-probabilities; a token or alternative whose logprob is not a number
    (null, a string) is left out, like an odd count (they only inform a confidence)."""
    entries = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        return None
    out: list[TokenLogprob] = []
    for entry in entries:
        if not isinstance(entry, dict) or "token" not in entry:
            continue
        logprob = _number(entry.get("logprob", 0.0))
        if logprob is None:
            continue
        alternatives = entry.get("top_logprobs")
        top = {
            str(t["token"]): value
            for t in (alternatives if isinstance(alternatives, list) else [])
            if isinstance(t, dict) and "token" in t and (value := _number(t.get("logprob"))) is not None
        }
        out.append(TokenLogprob(token=str(entry["token"]), logprob=logprob, top=top))
    return out


def _number(value: Any) -> float | None:
    """A log-probability as a float; None for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
