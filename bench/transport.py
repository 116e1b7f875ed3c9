"""Which HTTP transport the OpenAI-compatible provider uses, and the measurement behind it.

Each client variant sends the same chat-completion request to the fake provider (its
own process, so it has its own core) from a fixed number of workers for a fixed time.
Figures per variant and in-flight count: completed requests/s, and the client's CPU
microseconds per request (steadier than the rate on a shared, busy machine: on two
cores the client's CPU per request *is* its ceiling). Run alone:
``python -m bench.transport``.

Variants: httpx's own pool with default and with tuned limits; httpx with the
``httpx-aiohttp`` transport; httpx with our ``AiohttpPoolTransport``; that transport's
``post`` called directly (what the provider does); plain aiohttp for reference.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from agentflow_jobs.providers.transport import AiohttpPoolTransport
from tests.fakes.handles import FakeProviderProcess

SECONDS = 1.5
CONCURRENCY = (64, 256)
BODY = {
    "model": "fake-model",
    "messages": [{"role": "user", "content": "The delivery was great and the staff were kind."}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "label", "schema": {
        "type": "object", "properties": {"label": {"enum": ["positive", "negative"]}},
        "required": ["label"]}}},
}
Send = Callable[[], Awaitable[None]]


async def _drive(send: Send, concurrency: int, seconds: float) -> dict[str, float]:
    """Requests/s and client CPU µs/request from ``concurrency`` workers over ``seconds``."""
    for _ in range(min(concurrency, 32)):  # warm up connections
        await send()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await send()
            done += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = done / (time.perf_counter() - started)
    return {"rps": round(rate, 1), "cpu_us": round((time.process_time() - cpu) / max(done, 1) * 1e6)}


def _limits(concurrency: int) -> httpx.Limits:
    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


async def _httpx_run(url: str, concurrency: int, seconds: float, **client_kw: Any) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=30, **client_kw) as client:
        async def send() -> None:
            response = await client.post(url, json=BODY)
            response.raise_for_status()
            response.json()

        return await _drive(send, concurrency, seconds)


async def _direct_run(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    transport = AiohttpPoolTransport(max_connections=concurrency)
    timeout = transport.client_timeout({"connect": 10.0, "read": 30.0, "pool": 10.0, "total": 30.0})
    body = json.dumps(BODY).encode()
    headers = {"content-type": "application/json"}

    async def send() -> None:
        response = await transport.post(url, body, headers, timeout)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        json.loads(response.content)

    try:
        return await _drive(send, concurrency, seconds)
    finally:
        await transport.aclose()


async def _aiohttp_run(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def send() -> None:
            async with session.post(url, json=BODY) as response:
                response.raise_for_status()
                json.loads(await response.read())

        return await _drive(send, concurrency, seconds)


Variant = Callable[[str, int, float], Awaitable[dict[str, float]]]


def _variants() -> dict[str, Variant]:
    return {
        "httpx_default": lambda u, c, s: _httpx_run(u, c, s),
        "httpx_tuned_limits": lambda u, c, s: _httpx_run(u, c, s, limits=_limits(c)),
        "httpx_with_httpx_aiohttp_transport": lambda u, c, s: _httpx_run(
            u, c, s, transport=AiohttpTransport(limits=_limits(c))),
        "httpx_with_aiohttp_pool_transport": lambda u, c, s: _httpx_run(
            u, c, s, transport=AiohttpPoolTransport(max_connections=c)),
        "aiohttp_pool_transport_direct (chosen)": _direct_run,
        "aiohttp_plain (reference)": _aiohttp_run,
    }


def run(seconds: float = SECONDS) -> dict[str, Any]:
    """Requests/s per variant and concurrency, against one fake provider process."""
    figures: dict[str, Any] = {
        "unit": "rps = requests/s, cpu_us = client CPU microseconds per request",
        "seconds_per_cell": seconds,
    }
    # raw front: the HTTP client under test must be the bottleneck, not the fake's framework
    with FakeProviderProcess(front="raw") as fake:
        url = f"{fake.base_url}/chat/completions"
        for concurrency in CONCURRENCY:
            for name, variant in _variants().items():
                cell = asyncio.run(variant(url, concurrency, seconds))
                figures.setdefault(name, {})[f"in_flight_{concurrency}"] = cell
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
