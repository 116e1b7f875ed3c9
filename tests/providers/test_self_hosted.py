"""A self-hosted endpoint (llama.cpp, Ollama, vLLM on one box): its defaults, and a
timed-out request sent again at most once, with twice the time, not three times blindly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentflow_jobs.errors import ConfigError, ProviderError
from agentflow_jobs.providers import (
    DEFAULT_CONCURRENCY,
    SELF_HOSTED_CONCURRENCY,
    SELF_HOSTED_TIMEOUT,
    build_provider,
    is_self_hosted,
)
from agentflow_jobs.providers.openai_compat import DEFAULT_TIMEOUT, OpenAICompatProvider
from tests.fakes.handles import FakeProvider
from tests.providers.conftest import make_provider, request


@pytest.mark.parametrize(
    ("url", "self_hosted"),
    [("http://127.0.0.1:8080/v1", True), ("http://localhost:11434/v1", True), ("http://[::1]:8000/v1", True),
     ("http://192.168.1.20:8000/v1", True), ("http://10.0.0.7/v1", True), ("http://gpu-box.local/v1", True),
     ("http://host.docker.internal:11434/v1", True), ("http://ollama:11434/v1", True),
     ("https://api.openai.com/v1", False), ("https://8.8.8.8/v1", False),
     ("https://my-resource.openai.azure.com/openai", False)],
)
def test_which_endpoints_are_self_hosted(url: str, self_hosted: bool) -> None:
    assert is_self_hosted(url) is self_hosted


def built(config: dict[str, Any]) -> OpenAICompatProvider:
    provider = build_provider({"type": "openai", **config})
    assert isinstance(provider, OpenAICompatProvider)
    return provider


def test_a_self_hosted_endpoint_gets_low_concurrency_and_a_long_timeout() -> None:
    local = built({"base_url": "http://127.0.0.1:8080/v1"})
    hosted = built({"base_url": "https://api.openai.com/v1"})
    assert (local.self_hosted, local.limiter.max_concurrency, local._endpoint.timeout) == (
        True, SELF_HOSTED_CONCURRENCY, SELF_HOSTED_TIMEOUT)
    assert (hosted.self_hosted, hosted.limiter.max_concurrency, hosted._endpoint.timeout) == (
        False, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT)


def test_the_profile_says_better_than_the_address() -> None:
    tunnel = built({"base_url": "http://127.0.0.1:9000/v1", "self_hosted": False, "concurrency": 32,
                    "timeout": 20})
    assert (tunnel.self_hosted, tunnel.limiter.max_concurrency, tunnel._endpoint.timeout) == (False, 32, 20)
    with pytest.raises(ConfigError) as caught:
        build_provider({"base_url": "http://127.0.0.1:9000/v1", "self_hosted": "yes"})
    assert caught.value.key == "provider.self_hosted"


def test_a_self_hosted_timeout_is_sent_again_once_with_twice_the_time(fake_provider: FakeProvider) -> None:
    # the first answer takes 0.5 s: past the 0.3 s timeout, within the doubled 0.6 s
    fake_provider.script(latency_ms=500, times=2)
    provider = make_provider(fake_provider.base_url, max_attempts=3, timeout=0.3, concurrency=4,
                             self_hosted=True)

    async def run() -> int:
        try:
            reply = await provider.chat(request("slow"))
            return reply.usage.requests
        finally:
            await provider.aclose()

    assert asyncio.run(run()) == 2
    assert fake_provider.count == 2
    assert provider.limiter.limit == 2  # the server is busy: half as many at once


def test_a_hung_self_hosted_server_is_asked_twice_not_three_times(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="hang")
    provider = make_provider(fake_provider.base_url, max_attempts=3, timeout=0.2, self_hosted=True)

    async def run() -> None:
        try:
            await provider.chat(request("never answered"))
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(run())
    assert caught.value.code == "timeout" and "gave up after 2 attempts" in str(caught.value)
    assert fake_provider.stats()["by_status"] == {"hang": 2}


def test_a_hosted_apis_timeouts_are_retried_as_before(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="hang")
    provider = make_provider(fake_provider.base_url, max_attempts=3, timeout=0.2)

    async def run() -> None:
        try:
            await provider.chat(request("never answered"))
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError, match="gave up after 3 attempts"):
        asyncio.run(run())
    assert fake_provider.stats()["by_status"] == {"hang": 3}
