"""The fake provider as an ASGI app, and the uvicorn server the tests run it on.

``FakeProviderApp`` puts ``tests.fakes.provider.FakeCore`` behind ASGI: it reads the
request, asks the core for an ``Answer`` and carries it out; ``UvicornServer`` is a
``uvicorn.Server`` for it (loopback, access log off, lifespan off, a large backlog, a
short graceful shutdown).

Where it differs from the bare-protocol front (``provider.RawServer``, benchmarks):

- arrival, which latency counts from, is when uvicorn hands the request to the app,
  not when its last bytes came in;
- ``hang`` waits on a future that ``FakeState.reset()`` and server shutdown release
  (``release_hung``), or until the client disconnects; a released hang ends like
  ``reset``;
- ``reset`` cannot send an RST: ASGI has no handle on the socket. The app starts a
  200 reply promising more bytes than it sends, sends one, then raises ``FakeReset``;
  uvicorn closes the connection mid-reply, so the client sees a transport error
  (peer closed before the complete body) rather than ECONNRESET. uvicorn logs every
  exception that escapes an app; a filter on ``uvicorn.error`` drops only ``FakeReset``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from tests.fakes.provider import Answer, FakeCore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = (b"content-type", b"application/json")
# what a reset promises and what it sends of it before the connection drops
_PROMISED, _SENT = 1024, b"{"


class FakeReset(Exception):
    """Raised by the app on purpose so uvicorn drops the connection mid-reply."""


class _QuietResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], FakeReset))


_QUIET_RESETS = _QuietResets()


class _Hold:
    """A hung request in ``FakeState.hung``: ``abort()`` (reset, shutdown) releases it."""

    __slots__ = ("released",)

    def __init__(self) -> None:
        self.released: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def abort(self, *, reset: bool = False) -> None:
        if not self.released.done():
            self.released.set_result(None)


class FakeProviderApp:
    """ASGI app over a FakeCore; touches the core only from the server's loop."""

    def __init__(self, core: FakeCore) -> None:
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; nothing else is served
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # gone before the request was complete: never seen, as on the raw front
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        answer = self.core.decide(scope["method"], scope["path"], headers, body, arrived, query)
        if answer.action == "hang":
            await self._hang(answer, receive, send)
            return
        if answer.due > loop.time() and await _left_before(answer.due, receive):
            self.core.leave(answer)
            return
        self.core.settle(answer)
        if answer.action == "reset":
            await _drop_connection(send)
            return
        await send({"type": "http.response.start", "status": answer.status, "headers": [
            JSON, (b"content-length", str(len(answer.payload)).encode()),
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers.items())]})
        await send({"type": "http.response.body", "body": answer.payload})

    async def _hang(self, answer: Answer, receive: Receive, send: Send) -> None:
        hold = _Hold()
        hung = self.core.state.hung
        hung.add(hold)
        left = asyncio.ensure_future(_disconnect(receive))
        try:
            await asyncio.wait((hold.released, left), return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
            hung.discard(hold)
            self.core.leave(answer)
        if hold.released.done():
            await _drop_connection(send)


async def _disconnect(receive: Receive) -> None:
    """Return once the client disconnects (the request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _left_before(due: float, receive: Receive) -> bool:
    """Wait until loop time ``due``; True if the client disconnected first."""
    try:
        async with asyncio.timeout_at(due):
            await _disconnect(receive)
    except TimeoutError:
        return False
    return True


async def _drop_connection(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [JSON, (b"content-length", str(_PROMISED).encode())]})
    await send({"type": "http.response.body", "body": _SENT, "more_body": True})
    raise FakeReset("the fake provider drops this connection on purpose")


class UvicornServer(uvicorn.Server):
    """uvicorn serving ``FakeProviderApp``; shutting down releases hung requests first."""

    def __init__(self, core: FakeCore, *, host: str = "127.0.0.1", port: int = 0,
                 log_config: dict[str, Any] | None = None) -> None:
        self.core = core
        self.host = host
        config = uvicorn.Config(
            FakeProviderApp(core), host=host, port=port,
            log_config=log_config,  # None: leave the host process's logging alone
            log_level="warning", access_log=False, lifespan="off", ws="none",
            proxy_headers=False,  # no per-request middleware between uvicorn and the app
            backlog=4096,
            timeout_keep_alive=300,  # as the raw front: idle keep-alive connections stay open
            timeout_graceful_shutdown=1,
        )
        super().__init__(config)
        uvicorn_errors = logging.getLogger("uvicorn.error")
        if _QUIET_RESETS not in uvicorn_errors.filters:
            uvicorn_errors.addFilter(_QUIET_RESETS)

    @property
    def port(self) -> int:
        """The bound port (once ``started``)."""
        return int(self.servers[0].sockets[0].getsockname()[1])

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.core.state.release_hung()
        await super().shutdown(sockets)
