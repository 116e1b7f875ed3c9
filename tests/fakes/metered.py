"""Known usage from the in-process fake: every chat answer reports the token counts given.

The fake counts tokens from the characters it sees, which is close to, but not, what a
test can state in advance. ``fixed_usage(fake, prompt, completion)`` rewrites the
``usage`` of each answered chat request for the length of a ``with`` block, leaving
everything else (content, counters, faults) as the script makes it, so a test can
check a recorded cost to the cent. It works on either fake (``FakeAnthropic``'s Messages
get Anthropic's usage fields).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from tests.fakes.handles import FakeProvider

__all__ = ["fixed_usage"]


@contextlib.contextmanager
def fixed_usage(fake: FakeProvider, prompt_tokens: int, completion_tokens: int) -> Iterator[None]:
    core = fake._core
    decide = core.decide
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }

    anthropic = {"input_tokens": prompt_tokens, "output_tokens": completion_tokens,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    def metered(*args: Any) -> Any:
        answer = decide(*args)
        if answer.chat and answer.status == 200 and answer.payload:
            body = json.loads(answer.payload)
            # the Anthropic fake's Messages carry Anthropic's usage fields
            body["usage"] = dict(anthropic if body.get("type") == "message" else usage)
            answer.payload = json.dumps(body).encode()
        return answer

    core.decide = metered  # type: ignore[method-assign]
    try:
        yield
    finally:
        del core.decide
