"""A scripted fake of Anthropic's API: Messages (``POST /v1/messages``) and Message Batches.

``AnthropicCore`` is ``provider.FakeCore`` (the same script, counters, latency, hangs,
resets and RPM limit, served by the same uvicorn front) speaking Anthropic's shapes:
replies from ``anthropic_replies`` (the OpenAI fake's answers as Messages), batches
from ``anthropic_batches``, errors as ``{"type": "error", "error": {"type", "message"}}``,
the key checked in ``x-api-key``, ``anthropic-version`` required, and with an RPM limit
``anthropic-ratelimit-requests-{limit,remaining,reset}`` headers (reset an RFC 3339 time).

Routes: ``POST /v1/messages``; ``POST /v1/messages/batches``; ``GET /v1/messages/batches``;
``GET /v1/messages/batches/{id}``; ``GET /v1/messages/batches/{id}/results`` (JSONL);
``POST /v1/messages/batches/{id}/cancel``; the ``/_fake/*`` admin routes, and
``/_fake/batch_script``, ``/_fake/batch_stats`` (``anthropic_batches``).

``FakeAnthropic`` runs it in a thread (``base_url`` is the root, as Anthropic's is);
``python -m tests.fakes.anthropic --port N`` runs it alone and prints its URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

from tests.fakes.anthropic_batches import BatchStore
from tests.fakes.anthropic_replies import answer_for, anthropic_error, invalid
from tests.fakes.handles import FakeProvider, FakeProviderProcess
from tests.fakes.provider import Answer, FakeCore, make_front

__all__ = ["AnthropicCore", "FakeAnthropic", "FakeAnthropicProcess"]

_BATCHES = "/v1/messages/batches"


class AnthropicCore(FakeCore):
    """``FakeCore`` answering as Anthropic's API does (see the module doc)."""

    def __init__(self, *, latency_ms: float = 0.0, rpm: int | None = None) -> None:
        super().__init__(latency_ms=latency_ms, rpm=rpm)
        self.batches = BatchStore(self.state)
        self._admin[("POST", "/_fake/reset")] = self._admin_reset_all
        self._admin[("GET", "/_fake/batch_stats")] = lambda body: (200, self.batches.stats())
        self._admin[("POST", "/_fake/batch_script")] = lambda body: (
            200, self.batches.set_script(json.loads(body or b"{}")))

    def reset(self) -> None:
        """Zero the counters and scripts, chat and batches alike."""
        self.state.reset()
        self.batches.reset()

    def _admin_reset_all(self, body: bytes) -> tuple[int, Any]:
        self.reset()
        return 200, {"ok": True}

    def decide(self, method: str, path: str, headers: dict[str, str], body: bytes, arrived: float,
               query: str = "") -> Answer:
        route = path[3:] if path.startswith("/v1/_fake/") else path
        if route.startswith("/_fake/"):
            return super().decide(method, route, headers, body, arrived, query)
        refused = self._refuse(headers, arrived)
        if method == "POST" and route == "/v1/messages":
            return refused or self._chat(headers, body, arrived)
        if refused is not None:
            return refused
        answer = self.batches.handle(method, route, query, headers, body)
        if answer is None:
            return Answer("reply", arrived, 404, anthropic_error(404, f"no route {method} {route}"))
        return Answer("reply", arrived, *answer)

    def _refuse(self, headers: dict[str, str], now: float) -> Answer | None:
        """The API's answer to a request without the headers it needs, or None."""
        if not headers.get("anthropic-version"):
            return Answer("reply", now, 400, anthropic_error(400, "anthropic-version: header is required"))
        key = self.state.require_api_key
        if key and headers.get("x-api-key") != key:
            return Answer("reply", now, 401, anthropic_error(401, "invalid x-api-key"))
        return None

    def _chat(self, headers: dict[str, str], raw: bytes, arrived: float) -> Answer:
        state = self.state
        state.count += 1
        number = state.count
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        generation = state.generation

        def reply(status: int, payload: bytes, extra: dict[str, str] | None = None, due: float = arrived) -> Answer:
            return Answer("reply", due, status, payload, extra or {}, True, generation)

        body = _json(raw)
        if isinstance(body, dict):
            state.bodies.append(body)
            state.headers.append(headers)
        problem = invalid(body)
        if problem is not None:
            return reply(400, anthropic_error(400, problem))
        now = time.monotonic()
        wait = state.rpm_wait(now)
        limits = self._limit_headers(now)
        if wait is not None:
            limits["retry-after"] = str(max(1, math.ceil(wait)))
            return reply(429, anthropic_error(429, "Number of requests has exceeded your per-minute rate limit"), limits)
        effects = state.plan(body)
        if effects.fault == "hang":
            state.by_status["hang"] += 1
            return Answer("hang", arrived, chat=True, generation=generation)
        due = arrived + effects.latency_ms / 1000.0
        if effects.fault == "reset":
            return Answer("reset", due, chat=True, generation=generation)
        extra = dict(effects.headers or {})
        if effects.retry_after is not None:
            extra["retry-after"] = f"{effects.retry_after:g}"
        status, payload = answer_for(body, effects, number)
        return reply(status, payload, {**limits, **extra}, due)

    def _limit_headers(self, now: float) -> dict[str, str]:
        """Anthropic's request-bucket headers for the RPM limit (after ``rpm_wait``)."""
        state = self.state
        if not state.rpm or not state.rate_headers:
            return {}
        allowed = max(1, int(state.rpm * state.rpm_window_s / 60.0))
        reset_in = state.accepted[0] + state.rpm_window_s - now if state.accepted else 0.0
        reset = datetime.fromtimestamp(time.time() + max(0.0, reset_in), tz=UTC)
        return {"anthropic-ratelimit-requests-limit": str(state.rpm),
                "anthropic-ratelimit-requests-remaining": str(max(0, allowed - len(state.accepted))),
                "anthropic-ratelimit-requests-reset": reset.isoformat().replace("+00:00", "Z")}


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


class FakeAnthropic(FakeProvider):
    """The Anthropic fake on its own loop in a daemon thread (``base_url``: its root)."""

    kind = "anthropic"

    def __init__(self, *, latency_ms: float = 0.0, rpm: int | None = None, front: str = "uvicorn") -> None:
        super().__init__(latency_ms=latency_ms, rpm=rpm, front=front,
                         core=AnthropicCore(latency_ms=latency_ms, rpm=rpm))
        self.base_url = self.url
        self._core.batches.url = self.url  # type: ignore[attr-defined]

    def reset(self) -> None:
        core = self._core
        assert isinstance(core, AnthropicCore)
        self._call(core.reset)

    def batch_script(self, **settings: Any) -> None:
        """Script the Message Batches (``tests.fakes.anthropic_batches``)."""
        core = self._core
        assert isinstance(core, AnthropicCore)
        self._call(lambda: core.batches.set_script(settings))

    def batch_stats(self) -> dict[str, Any]:
        core = self._core
        assert isinstance(core, AnthropicCore)
        return self._call(core.batches.stats)

    @property
    def batch_requests(self) -> list[Any]:
        """The ``POST /v1/messages/batches`` bodies received, most recent last."""
        core = self._core
        assert isinstance(core, AnthropicCore)
        return self._call(lambda: list(core.batches.bodies))


class FakeAnthropicProcess(FakeProviderProcess):
    """The Anthropic fake as its own process (``python -m tests.fakes.anthropic``)."""

    kind = "anthropic"
    module = "tests.fakes.anthropic"

    def batch_script(self, **settings: Any) -> None:
        self._request("POST", "/_fake/batch_script", settings)

    def batch_stats(self) -> dict[str, Any]:
        return dict(self._request("GET", "/_fake/batch_stats"))


async def _serve(args: argparse.Namespace) -> None:
    from uvicorn.config import LOGGING_CONFIG

    core = AnthropicCore(latency_ms=args.latency_ms, rpm=args.rpm)
    server = make_front(core, "uvicorn", host=args.host, port=args.port, log_config=LOGGING_CONFIG)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise SystemExit("fake anthropic did not start")
        await asyncio.sleep(0.01)
    core.batches.url = f"http://{server.host}:{server.port}"
    print(core.batches.url, flush=True)
    await task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.anthropic", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rpm", type=int, default=None, help="server-side requests-per-minute limit")
    parser.add_argument("--front", default="uvicorn", help="ignored: always uvicorn")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
