"""AiohttpPoolTransport is a real httpx transport: httpx's API, aiohttp's pool."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from agentflow_jobs.providers.transport import AiohttpPoolTransport
from tests.fakes.handles import FakeProvider


def test_plugs_into_an_httpx_client(fake_provider: FakeProvider) -> None:
    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=AiohttpPoolTransport(max_connections=4)) as client:
            return await client.post(
                f"{fake_provider.base_url}/chat/completions",
                json={"messages": [{"role": "user", "content": "hi"}]},
                headers={"x-probe": "1"},
            )

    response = asyncio.run(run())
    assert response.status_code == 200
    assert json.loads(response.content)["object"] == "chat.completion"
    assert response.headers["content-type"] == "application/json"
    assert fake_provider.request_headers[0]["x-probe"] == "1"


def test_status_and_headers_pass_through(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=429, retry_after=3)

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=AiohttpPoolTransport()) as client:
            return await client.post(f"{fake_provider.base_url}/chat/completions", json={})

    response = asyncio.run(run())
    assert response.status_code == 429 and response.headers["retry-after"] == "3"


@pytest.mark.parametrize(
    ("fault", "error"), [("reset", httpx.TransportError), ("hang", httpx.TimeoutException)]
)
def test_aiohttp_errors_become_httpx_errors(
    fake_provider: FakeProvider, fault: str, error: type[Exception]
) -> None:
    fake_provider.script(fault=fault)

    async def run() -> None:
        async with httpx.AsyncClient(transport=AiohttpPoolTransport(), timeout=0.3) as client:
            await client.post(f"{fake_provider.base_url}/chat/completions", json={})

    with pytest.raises(error) as caught:
        asyncio.run(run())
    assert caught.value.request.url.path == "/v1/chat/completions"


def test_only_post_is_supported() -> None:
    async def run() -> None:
        async with httpx.AsyncClient(transport=AiohttpPoolTransport()) as client:
            await client.get("http://127.0.0.1:9/")

    with pytest.raises(httpx.UnsupportedProtocol):
        asyncio.run(run())
