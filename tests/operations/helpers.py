"""Small builders shared by the operation tests."""

from __future__ import annotations

import json
from typing import Any

from agentflow_jobs.chat import ChatReply, TokenLogprob
from agentflow_jobs.wire import CompletionRequest, Usage


def request(operation: str, **fields: Any) -> CompletionRequest:
    return CompletionRequest(operation=operation, items=[], **fields)


def reply(
    text: Any,
    *,
    finish_reason: str = "stop",
    logprobs: list[TokenLogprob] | None = None,
    choice_probs: dict[str, float] | None = None,
) -> ChatReply:
    body = text if isinstance(text, str) else json.dumps(text)
    return ChatReply(
        text=body,
        usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        finish_reason=finish_reason,
        logprobs=logprobs,
        choice_probs=choice_probs,
    )
