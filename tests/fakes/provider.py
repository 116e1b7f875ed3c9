"""A scripted OpenAI-compatible chat-completions server for tests and benchmarks.

One transport-neutral core, ``FakeCore``, decides about each request: given
(method, path, headers, body, arrival time) it returns an ``Answer`` — a reply
(status, JSON payload, headers) due at a loop time, or ``hang``, or ``reset`` — and
keeps the counters (``FakeState``). Two fronts put it on the wire:

- ``tests.fakes.asgi``: an ASGI app served by uvicorn — what the tests use (the
  ``fake_provider`` fixture, ``FakeProviderProcess`` by default);
- ``RawServer`` below: a bare ``asyncio.Protocol`` speaking HTTP/1.1 (keep-alive,
  Content-Length bodies), for the benchmarks, which drive thousands of requests/s at
  the fake and must measure the client under test, not a framework. A reply without
  latency is written straight from ``data_received``, and ``reset`` is a real RST.

Latency counts from the moment the request arrived: the reply is built at once and
written ``latency`` after arrival, so a burst of 256 requests on this one core does
not add its own queueing to every reply's latency.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, OpenAI's Batch API (files +
batches, ``tests.fakes.batches``), and for scripting from
another process ``GET /_fake/stats``, ``GET /_fake/requests``, ``POST /_fake/reset``,
``POST /_fake/script`` (each also under ``/v1``).

Scripting (rules, settings, counters): ``tests/fakes/script.py``.

Run alone: ``python -m tests.fakes.provider --port N [--latency-ms X] [--rpm N]
[--front uvicorn|raw]`` prints its base URL (ending in ``/v1``) on the first stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.fakes.answers import error_json, reply_for
from tests.fakes.batches import FakeBatches
from tests.fakes.script import FAULTS, FakeState, Rule

__all__ = ["FAULTS", "Answer", "FakeCore", "Front", "RawServer", "Rule", "main"]

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           408: "Request Timeout", 409: "Conflict", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass(slots=True)
class Answer:
    """What a front does about one request.

    ``action``: ``"reply"`` (write ``status``, ``payload``, ``headers``; content-type is
    always JSON), ``"hang"`` (write nothing until ``FakeState.reset()``/close releases it,
    or the client leaves), ``"reset"`` (drop the connection instead of answering).
    ``due``: the loop time to act at — arrival plus the scripted latency.

    A front calls ``FakeCore.settle(answer)`` when it acts at ``due`` on a live
    connection, or ``FakeCore.leave(answer)`` when the client went away first or a
    hang was released; that keeps ``in_flight`` and ``by_status`` the same for both.
    """

    action: str
    due: float
    status: int = 0
    payload: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chat: bool = False  # a chat request: its outcome is counted in by_status when settled
    generation: int | None = None  # the counters' generation it is in flight in; None once out
    started: float | None = None  # a chat request's arrival (loop time, as ``due``)


class FakeCore:
    """The transport-neutral fake: routes a request, applies the script, keeps the counters."""

    def __init__(self, *, latency_ms: float = 0.0, rpm: int | None = None) -> None:
        self.state = FakeState(latency_ms=latency_ms, rpm=rpm)
        self.batches = FakeBatches(self.state)
        self._admin: dict[tuple[str, str], Callable[[bytes], tuple[int, Any]]] = {
            ("GET", "/_fake/stats"): lambda body: (200, self.state.stats()),
            ("GET", "/_fake/requests"): lambda body: (200, list(self.state.bodies)),
            ("POST", "/_fake/reset"): self._admin_reset,
            ("POST", "/_fake/script"): self._admin_script,
            ("GET", "/_fake/batch_stats"): lambda body: (200, self.batches.stats()),
            ("POST", "/_fake/batch_script"): lambda body: (200, self.batches.set_script(json.loads(body or b"{}"))),
            ("GET", "/v1/models"): lambda body: (200, {"object": "list", "data": [
                {"id": "fake-model", "object": "model", "owned_by": "fake"}]}),
        }

    def decide(self, method: str, path: str, headers: dict[str, str], body: bytes, arrived: float,
               query: str = "") -> Answer:
        """The answer to one complete request (``path`` without the query, ``headers``
        with lower-case names) that arrived at loop time ``arrived``."""
        route_path = path[3:] if path.startswith("/v1/_fake/") else path
        if method == "POST" and route_path in CHAT_PATHS:
            if self.state.first_arrival is None:
                self.state.first_arrival = arrived
            answer = self._chat(headers, body, arrived)
            answer.started = arrived
            return answer
        batch_answer = self.batches.handle(method, route_path, query, headers, body)
        if batch_answer is not None:
            return Answer("reply", arrived, *batch_answer)
        route = self._admin.get((method, route_path))
        if route is None:
            return Answer("reply", arrived, 404, error_json(f"no route {method} {path}"))
        try:
            status, payload = route(body)
        except (ValueError, TypeError) as exc:
            status, payload = 400, {"error": {"message": str(exc), "type": "invalid_request_error"}}
        return Answer("reply", arrived, status, json.dumps(payload).encode())

    def settle(self, answer: Answer) -> None:
        """The front acts on ``answer`` now: count a chat request's outcome, end its flight."""
        if answer.chat:
            self.state.by_status["reset" if answer.action == "reset" else str(answer.status)] += 1
        self.leave(answer)

    def leave(self, answer: Answer) -> None:
        """The request is no longer in flight (once; not if the counters were reset since)."""
        if answer.generation is not None and answer.generation == self.state.generation:
            state = self.state
            state.in_flight -= 1
            now = time.monotonic()
            if answer.chat and answer.started is not None:
                state.flight_seconds += now - answer.started
                state.last_settled = now
        answer.generation = None

    def reset(self) -> None:
        """Zero the counters and scripts, chat and batches alike."""
        self.state.reset()
        self.batches.reset()

    def _admin_reset(self, body: bytes) -> tuple[int, Any]:
        self.reset()
        return 200, {"ok": True}

    def _admin_script(self, body: bytes) -> tuple[int, Any]:
        data = json.loads(body or b"{}")
        if not isinstance(data, dict):
            raise ValueError("script body must be a JSON object")
        self.state.apply_script(data)
        return 200, {"ok": True, "rules": len(self.state.rules)}

    def _chat(self, headers: dict[str, str], raw: bytes, arrived: float) -> Answer:
        state = self.state
        state.count += 1
        number = state.count
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        generation = state.generation

        def error(status: int, message: str, extra: dict[str, str] | None = None) -> Answer:
            return Answer("reply", arrived, status, error_json(message, status), extra or {}, True, generation)

        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError:
            return error(400, "request body is not a JSON object")
        state.bodies.append(body)
        state.headers.append(headers)
        if state.require_api_key and headers.get("authorization") != f"Bearer {state.require_api_key}":
            return error(401, "Incorrect API key provided")
        now = time.monotonic()
        wait = state.rpm_wait(now)
        limits = state.limit_headers(now)
        if wait is not None:
            limits["retry-after"] = str(max(1, math.ceil(wait)))
            return error(429, "Rate limit reached for requests", limits)
        effects = state.plan(body)
        if effects.fault == "hang":
            state.by_status["hang"] += 1
            return Answer("hang", arrived, chat=True, generation=generation)
        due = arrived + effects.latency_ms / 1000.0
        if effects.fault == "reset":
            return Answer("reset", due, chat=True, generation=generation)
        status, payload, extra = reply_for(body, effects, number)
        return Answer("reply", due, status, payload, {**limits, **extra}, True, generation)


class Front(Protocol):
    """What runs a FakeCore on a port: ``RawServer`` or ``tests.fakes.asgi.UvicornServer``.

    The shape of ``uvicorn.Server``: ``serve()`` binds, sets ``started`` (``port`` is
    then the bound port) and answers until ``should_exit`` is set, then stops.
    """

    core: FakeCore
    host: str
    started: bool
    should_exit: bool

    @property
    def port(self) -> int: ...

    async def serve(self) -> None: ...


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    query: str = ""


class _Connection(asyncio.Protocol):
    """One client connection: parse requests in order, answer one at a time."""

    def __init__(self, core: FakeCore) -> None:
        self.core = core
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answer: Answer | None = None  # the request being answered; later ones wait in the buffer
        self.keep_alive = True
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        self.arrived = 0.0  # loop time the latest bytes came in
        self.answered: tuple[int, float] | None = None  # (generation, loop time) of the last chat answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.arrived = self.loop.time()
        self.buffer += data
        self.drain()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.core.state.hung.discard(self)
        if self.answer is not None:
            self.core.leave(self.answer)
            self.answer = None

    def drain(self) -> None:
        while self.answer is None and not self.closed:
            request = self._next_request()
            if request is None:
                return
            self.keep_alive = request.keep_alive
            answer = self.core.decide(request.method, request.path, request.headers, request.body,
                                      self.arrived, request.query)
            state = self.core.state
            if answer.chat and self.answered is not None and self.answered[0] == state.generation:
                state.client_gaps.append(self.arrived - self.answered[1])
            self.answer = answer
            if answer.action == "hang":
                self.core.state.hung.add(self)
            elif answer.due > self.arrived:
                self.timer = self.loop.call_at(answer.due, self._on_due)
            else:
                self.finish()

    def _on_due(self) -> None:
        self.timer = None
        self.finish()
        self.drain()

    def finish(self) -> None:
        answer, self.answer = self.answer, None
        assert answer is not None
        self.core.settle(answer)
        if answer.action == "reset":
            self.abort(reset=True)
        else:
            self.send(answer.status, answer.payload, answer.headers)
            if answer.chat:
                self.answered = (self.core.state.generation, self.loop.time())

    def _next_request(self) -> _Request | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        method, path, version = [*lines[0].split(" ", 2), "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        path, _, query = path.partition("?")
        return _Request(method, path, headers, body, not close, query)

    def send(self, status: int, payload: bytes, extra: dict[str, str]) -> None:
        if self.closed or self.transport is None:
            return
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
                "content-type: application/json", f"content-length: {len(payload)}"]
        head.extend(f"{k}: {v}" for k, v in extra.items())
        if not self.keep_alive:
            head.append("connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        if not self.keep_alive:
            self.transport.close()

    def abort(self, *, reset: bool = False) -> None:
        if self.transport is None or self.closed:
            return
        if reset:  # SO_LINGER 0 makes close() send RST, as a crashed proxy would
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class RawServer:
    """The bare-protocol front (benchmarks): a FakeCore on an ``asyncio`` server."""

    def __init__(self, core: FakeCore, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.core = core
        self.host, self._port = host, port
        self.started = False
        self.should_exit = False
        self._server: asyncio.base_events.Server | None = None

    @property
    def port(self) -> int:
        return self._port

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self.core), self.host, self._port, backlog=2048)
        self._port = self._server.sockets[0].getsockname()[1]
        self.started = True
        try:
            while not self.should_exit:
                await asyncio.sleep(0.05)
        finally:
            self.core.state.release_hung()
            self._server.close()
            await self._server.wait_closed()


FRONTS = ("uvicorn", "raw")


def make_front(core: FakeCore, front: str, *, host: str = "127.0.0.1", port: int = 0,
               log_config: dict[str, Any] | None = None) -> Front:
    """``front`` "uvicorn" (the ASGI app, for tests) or "raw" (the bare protocol, for benchmarks)."""
    if front == "raw":
        return RawServer(core, host=host, port=port)
    if front == "uvicorn":
        from tests.fakes.asgi import UvicornServer

        return UvicornServer(core, host=host, port=port, log_config=log_config)
    raise ValueError(f"unknown front {front!r}; one of {FRONTS}")


async def serve(args: argparse.Namespace) -> None:
    log_config = None
    if args.front == "uvicorn":  # its own process: uvicorn's usual stderr logging
        from uvicorn.config import LOGGING_CONFIG

        log_config = LOGGING_CONFIG
    core = FakeCore(latency_ms=args.latency_ms, rpm=args.rpm)
    server = make_front(core, args.front, host=args.host, port=args.port, log_config=log_config)
    if args.front == "raw":  # uvicorn.Server handles the signals itself
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise SystemExit("fake provider did not start")
        await asyncio.sleep(0.01)
    print(f"http://{server.host}:{server.port}/v1", flush=True)
    await task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.provider", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rpm", type=int, default=None, help="server-side requests-per-minute limit")
    parser.add_argument("--front", choices=FRONTS, default="uvicorn",
                        help="uvicorn: the ASGI app (tests); raw: the bare protocol (benchmarks)")
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises a SIGINT it handled
        asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
