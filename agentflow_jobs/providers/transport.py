"""A lean httpx transport over aiohttp's connection pool.

Why not just ``httpx.AsyncClient``: with hundreds of requests in flight httpx's own pool
falls to a few hundred requests/s, and even with the ``httpx-aiohttp`` transport the
client's per-request machinery (URL merging, cookies, auth and redirect flows, event
hooks, a streamed body) costs about three times aiohttp's own CPU per request — on a
two-core machine that *is* the throughput. This transport implements httpx's
``AsyncBaseTransport`` (so it plugs into ``httpx.AsyncClient`` like any other, and the
provider still speaks ``httpx.Request``/``httpx.Response`` and raises httpx's
exceptions), reads each small JSON body in one go, and maps aiohttp's errors onto
httpx's. The provider calls its ``post`` (the path ``handle_async_request`` wraps)
directly: building an httpx Request and Response per call is another ~45 µs it does not
need. Measurements: bench/transport.py, bench/README.md.

``Endpoint`` is what a provider sends through: one URL that small JSON bodies are
POSTed to, its headers and timeouts built once, and a transport per event loop (an
aiohttp session belongs to the loop that made it; a sync wrapper may run several).
``transport="httpx"`` uses httpx's own transport instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import NamedTuple

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

__all__ = ["AiohttpPoolTransport", "Endpoint", "RawResponse", "aiohttp_timeout"]


class RawResponse(NamedTuple):
    """Status, headers and the whole body: all a JSON API call needs."""

    status: int
    headers: Mapping[str, str]
    content: bytes


class AiohttpPoolTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncBaseTransport`` on one aiohttp session; bodies are read whole."""

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 30.0,
                 trust_env: bool = True) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        # created on first use, inside the event loop that will own it
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive_expiry
            )
            # trust_env is resolved here once per origin: aiohttp's own does two thread-pool
            # hops (netrc, proxy lookup) per request; cookies are not an API's business.
            # No skip_auto_headers: aiohttp adds its User-Agent only to a request without
            # one, and a skip list costs a header copy per request
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _proxy(self, url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        found = self._proxies.get(url)
        if found is None:
            found = (None, None)
            if self._trust_env:
                with contextlib.suppress(LookupError):
                    found = get_env_proxy_for_url(URL(url))
            if len(self._proxies) < 64:  # one provider talks to one or two URLs
                self._proxies[url] = found
        return found

    def client_timeout(self, timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        """aiohttp's timeout for an httpx timeout dict, cached (one per provider in practice)."""
        key = tuple(timeout.get(k) for k in ("connect", "read", "pool", "total"))
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = aiohttp_timeout(timeout)
        return found

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: aiohttp.ClientTimeout
    ) -> RawResponse:
        """POST a small body and read the whole answer: the provider's hot path."""
        proxy, proxy_auth = self._proxy(url)
        try:
            async with self._session_now().post(
                url, data=body, headers=headers, allow_redirects=False,
                timeout=timeout, proxy=proxy, proxy_auth=proxy_auth,
            ) as response:
                return RawResponse(response.status, response.headers, await response.read())
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no answer in time ({type(exc).__name__})") from exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            raise httpx.UnsupportedProtocol(f"{type(self).__name__} sends POST requests only")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.raw}
        timeout = self.client_timeout(request.extensions.get("timeout") or {})
        try:
            raw = await self.post(str(request.url), request.content, headers, timeout)
        except httpx.TransportError as exc:
            exc.request = request
            raise
        return httpx.Response(raw.status, headers=list(raw.headers.items()), content=raw.content,
                              request=request)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class Endpoint:
    """One URL small JSON bodies are POSTed to, over a transport owned by the running loop.

    Headers, URL and timeouts are built once: per-request httpx URL/header parsing is
    measurable at thousands of requests/s. ``post`` raises httpx's (and, from the pool,
    aiohttp's, OS and timeout) exceptions; the caller decides what they mean.
    """

    def __init__(
        self, url: str, headers: Mapping[str, str], *, timeout: float, connect_timeout: float | None,
        read_timeout: float | None, max_connections: int, kind: str = "aiohttp",
    ) -> None:
        if kind not in ("aiohttp", "httpx"):
            raise ValueError("transport is 'aiohttp' or 'httpx'")
        self.url, self._kind, self._max_connections = url, kind, max_connections
        self._headers = httpx.Headers(headers)
        self._header_map = dict(self._headers.items())
        self._url_object = httpx.URL(url)
        self.timeout = self._total_timeout = timeout
        connect = connect_timeout or min(10.0, timeout)
        self._connect_timeout, self._read_timeout = connect, read_timeout
        self._extensions = {"timeout": httpx.Timeout(
            timeout, connect=connect, read=read_timeout or timeout, pool=connect
        ).as_dict()}
        timeouts = {**self._extensions["timeout"], "total": timeout}
        if (timeouts.get("read") or 0) >= timeout:
            # the total timeout fires first anyway; a read timer is re-armed per packet
            timeouts["read"] = None
        self._aiohttp_timeout = aiohttp_timeout(timeouts)
        self._http: httpx.AsyncBaseTransport | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None

    async def post(self, body: bytes, *, timeout: float | None = None) -> RawResponse:
        """POST ``body`` and read the whole answer, within ``timeout`` seconds if given
        (else the endpoint's own timeouts)."""
        http = self._transport_for_loop()
        if isinstance(http, AiohttpPoolTransport):
            limits = self._aiohttp_timeout
            if timeout is not None:
                limits = http.client_timeout({"connect": limits.sock_connect, "total": timeout})
            return await http.post(self.url, body, self._header_map, limits)
        extensions = self._extensions
        if timeout is not None:
            extensions = {"timeout": {**extensions["timeout"], "read": timeout}}
        request = httpx.Request(
            "POST", self._url_object, headers=self._headers, content=body, extensions=extensions
        )
        async with asyncio.timeout(timeout or self._total_timeout):
            response = await http.handle_async_request(request)
            await response.aread()
        return RawResponse(response.status_code, response.headers, response.content)

    def limit_hit(self, exc: BaseException, timeout: float | None = None) -> str:
        """Which limit a timeout ``exc`` of ``post(timeout=timeout)`` hit, with the
        setting that changes it, e.g. "no data for 30 s, provider.read_timeout"."""
        total = timeout or self._total_timeout
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return f"no connection in {self._connect_timeout:g} s, provider.connect_timeout"
        read = self._read_timeout
        # the pool's read timer raises aiohttp's ServerTimeoutError, the whole attempt's a
        # bare TimeoutError: both reach the caller as a ReadTimeout caused by them
        by_read_timer = isinstance(exc, httpx.ReadTimeout) and type(exc.__cause__) is not TimeoutError
        if by_read_timer and timeout is None and read is not None and read < total:
            return f"no data for {read:g} s, provider.read_timeout"
        return f"the attempt had {total:g} s, provider.timeout"

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None and self._http_loop is asyncio.get_running_loop():
            await http.aclose()
        self._http_loop = None

    def _transport_for_loop(self) -> httpx.AsyncBaseTransport:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            self._http = self._make_transport()
            self._http_loop = loop
        return self._http

    def _make_transport(self) -> httpx.AsyncBaseTransport:
        size = self._max_connections
        if self._kind == "aiohttp":
            return AiohttpPoolTransport(max_connections=size)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=30)
        return httpx.AsyncHTTPTransport(limits=limits)


def aiohttp_timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's timeout keys (connect, read, pool) plus ``total`` as an aiohttp timeout."""
    return aiohttp.ClientTimeout(
        total=timeout.get("total"),
        sock_connect=timeout.get("connect"),
        sock_read=timeout.get("read"),
        connect=timeout.get("pool"),
    )


def _httpx_error(exc: aiohttp.ClientError) -> httpx.TransportError:
    """The httpx exception a caller of an httpx transport expects for an aiohttp error."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    return httpx.ReadError(message)
