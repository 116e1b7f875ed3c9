"""A scripted OpenAI-compatible chat-completions server for tests and benchmarks.

It is the peer for throughput benchmarks with hundreds of requests in flight, so it is
a bare ``asyncio.Protocol`` speaking HTTP/1.1 (keep-alive, Content-Length bodies)
rather than a framework: a reply without latency is written straight from
``data_received``, and faults like a connection reset or a hang need the raw transport
anyway. Latency counts from the moment the request arrived: the reply is built at once
and written by a timer due ``latency`` after arrival, so a burst of 256 requests on
this one core does not add its own queueing to every reply's latency.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, and for scripting from
another process ``GET /_fake/stats``, ``GET /_fake/requests``, ``POST /_fake/reset``,
``POST /_fake/script`` (each also under ``/v1``).

Scripting (rules, settings, counters): ``tests/fakes/script.py``.

Run alone: ``python -m tests.fakes.provider --port N [--latency-ms X] [--rpm N]``
prints its base URL (ending in ``/v1``) on the first stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes import replies
from tests.fakes.script import FAULTS, Effects, FakeState, Rule

__all__ = ["FAULTS", "FakeProviderServer", "Rule", "main"]

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           408: "Request Timeout", 409: "Conflict", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class _Connection(asyncio.Protocol):
    """One client connection: parse requests in order, answer one at a time."""

    def __init__(self, server: FakeProviderServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closed = False
        self.counted: int | None = None  # generation of this connection's in-flight chat request
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        self.arrived = 0.0  # loop time the latest bytes came in

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
        self.server.state.hung.discard(self)
        self.done()

    def done(self) -> None:
        # a request from before a reset was already forgotten by the counters
        if self.counted is not None and self.counted == self.server.state.generation:
            self.server.state.in_flight -= 1
        self.counted = None

    def drain(self) -> None:
        while not self.busy and not self.closed:
            request = self._next_request()
            if request is None:
                return
            self.server.handle(self, request)

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
        return _Request(method, path.split("?", 1)[0], headers, body, not close)

    def send(self, status: int, payload: bytes, keep_alive: bool, extra: dict[str, str] | None = None,
             content_type: str = "application/json") -> None:
        if self.closed or self.transport is None:
            return
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
                f"content-type: {content_type}", f"content-length: {len(payload)}"]
        head.extend(f"{k}: {v}" for k, v in (extra or {}).items())
        if not keep_alive:
            head.append("connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        if not keep_alive:
            self.transport.close()

    def abort(self, *, reset: bool = False) -> None:
        if self.transport is None or self.closed:
            return
        if reset:  # SO_LINGER 0 makes close() send RST, as a crashed proxy would
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class FakeProviderServer:
    """The server: routes requests, applies the script, keeps the counters."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0.0,
                 rpm: int | None = None) -> None:
        self.host, self.port = host, port
        self.state = FakeState(latency_ms=latency_ms, rpm=rpm)
        self._server: asyncio.base_events.Server | None = None
        self._admin: dict[tuple[str, str], Callable[[_Request], tuple[int, Any]]] = {
            ("GET", "/_fake/stats"): lambda r: (200, self.state.stats()),
            ("GET", "/_fake/requests"): lambda r: (200, list(self.state.bodies)),
            ("POST", "/_fake/reset"): self._admin_reset,
            ("POST", "/_fake/script"): self._admin_script,
            ("GET", "/v1/models"): lambda r: (200, {"object": "list", "data": [
                {"id": "fake-model", "object": "model", "owned_by": "fake"}]}),
        }

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=2048
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.state.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def handle(self, conn: _Connection, request: _Request) -> None:
        path = request.path[3:] if request.path.startswith("/v1/_fake/") else request.path
        if request.method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            self._chat(conn, request)
            return
        route = self._admin.get((request.method, path))
        if route is None:
            conn.send(404, _error_json(f"no route {request.method} {request.path}"), request.keep_alive)
            return
        try:
            status, payload = route(request)
        except (ValueError, TypeError) as exc:
            status, payload = 400, {"error": {"message": str(exc), "type": "invalid_request_error"}}
        conn.send(status, json.dumps(payload).encode(), request.keep_alive)

    def _admin_reset(self, request: _Request) -> tuple[int, Any]:
        self.state.reset()
        return 200, {"ok": True}

    def _admin_script(self, request: _Request) -> tuple[int, Any]:
        data = json.loads(request.body or b"{}")
        if not isinstance(data, dict):
            raise ValueError("script body must be a JSON object")
        self.state.apply_script(data)
        return 200, {"ok": True, "rules": len(self.state.rules)}

    def _chat(self, conn: _Connection, request: _Request) -> None:
        state = self.state
        state.count += 1
        number = state.count
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        conn.counted = state.generation
        try:
            body = json.loads(request.body)
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError:
            self._finish_error(conn, request, 400, "request body is not a JSON object")
            return
        state.bodies.append(body)
        state.headers.append(request.headers)
        if state.require_api_key and request.headers.get("authorization") != f"Bearer {state.require_api_key}":
            self._finish_error(conn, request, 401, "Incorrect API key provided")
            return
        wait = state.rpm_wait(time.monotonic())
        if wait is not None:
            self._finish_error(conn, request, 429, "Rate limit reached for requests",
                               {"retry-after": str(max(1, math.ceil(wait)))})
            return
        effects = state.plan(body)
        if effects.fault == "hang":
            conn.busy = True
            state.hung.add(conn)
            state.by_status["hang"] += 1
            return
        if effects.latency_ms > 0:
            conn.busy = True
            reply = None if effects.fault == "reset" else _reply(body, effects, number)
            conn.timer = conn.loop.call_at(
                conn.arrived + effects.latency_ms / 1000.0,
                self._finish, conn, request, body, effects, number, reply,
            )
            return
        self._finish(conn, request, body, effects, number)

    def _finish_error(self, conn: _Connection, request: _Request, status: int, message: str,
                      headers: dict[str, str] | None = None) -> None:
        self.state.by_status[str(status)] += 1
        conn.done()
        conn.send(status, _error_json(message, status), request.keep_alive, headers)

    def _finish(self, conn: _Connection, request: _Request, body: dict[str, Any], effects: Effects,
                number: int, reply: tuple[int, bytes, dict[str, str]] | None = None) -> None:
        conn.timer = None
        if effects.fault == "reset":
            self.state.by_status["reset"] += 1
            conn.done()
            conn.abort(reset=True)
            return
        status, payload, headers = reply or _reply(body, effects, number)
        self.state.by_status[str(status)] += 1
        conn.done()
        conn.send(status, payload, request.keep_alive, headers)
        if conn.busy:
            conn.busy = False
            conn.drain()


# fault -> the parameter a server without the feature names, and OpenAI's message
REJECTIONS = {
    "reject_json_schema": (
        "response_format", "Invalid parameter: response_format of type 'json_schema' is not supported with this model."),
    "reject_logprobs": ("logprobs", "Unsupported parameter: 'logprobs' is not supported with this model."),
}


def _error_json(message: str, status: int = 400) -> bytes:
    kind = {429: "rate_limit_error", 401: "authentication_error"}.get(status, "invalid_request_error")
    if status >= 500:
        kind = "server_error"
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


def _reply(body: dict[str, Any], effects: Effects, number: int) -> tuple[int, bytes, dict[str, str]]:
    """Status, payload and headers of an answered request."""
    headers: dict[str, str] = {}
    if effects.retry_after is not None:
        headers["retry-after"] = f"{effects.retry_after:g}"
    if effects.retry_after_ms is not None:
        headers["retry-after-ms"] = f"{effects.retry_after_ms:g}"
    fault = effects.fault
    if effects.status is not None and effects.status != 200:
        message = effects.body or f"fake provider scripted status {effects.status}"
        return effects.status, _error_json(message, effects.status), headers
    if fault in REJECTIONS:
        param, default = REJECTIONS[fault]
        return 400, json.dumps({"error": {"message": effects.body or default, "type": "invalid_request_error",
                                          "param": param, "code": None}}).encode(), headers
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


async def serve(args: argparse.Namespace) -> None:
    server = FakeProviderServer(host=args.host, port=args.port, latency_ms=args.latency_ms, rpm=args.rpm)
    await server.start()
    print(server.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.provider", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rpm", type=int, default=None, help="server-side requests-per-minute limit")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
