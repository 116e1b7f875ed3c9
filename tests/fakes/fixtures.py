"""pytest fixtures for the fake providers (OpenAI-compatible, and Anthropic's API).

``fake_provider``: the in-process fake (one server per session, reset around every
test). ``fake_provider_process``: the fake in its own process, for tests that kill the
client and need the provider to keep counting. ``fake_provider_factory`` starts extra
processes with options (latency, rpm). ``fake_anthropic``: the Anthropic fake.
``chat_fake``: the fake of ``provider_kind`` ("openai" unless a test parametrizes it
over ``kinds.KINDS`` with ``indirect=True``), so one test runs against both APIs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.handles import FakeProvider, FakeProviderProcess


@pytest.fixture(scope="session")
def _fake_provider_server() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.close()


@pytest.fixture
def fake_provider(_fake_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    """The running fake with a clean script and zeroed counters."""
    _fake_provider_server.reset()
    yield _fake_provider_server
    _fake_provider_server.reset()  # releases hung requests so no client waits forever


@pytest.fixture
def fake_provider_process() -> Iterator[FakeProviderProcess]:
    """The fake as a separate process (``python -m tests.fakes.provider``)."""
    with FakeProviderProcess() as fake:
        yield fake


@pytest.fixture
def fake_provider_factory() -> Iterator[Callable[..., FakeProviderProcess]]:
    """Start fake provider processes with options; all are stopped after the test."""
    started: list[FakeProviderProcess] = []

    def start(**options: Any) -> FakeProviderProcess:
        fake = FakeProviderProcess(**options)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.close()


# -- the same tests against both provider APIs ---------------------------------------


@pytest.fixture(scope="session")
def _fake_anthropic_server() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    yield fake
    fake.close()


@pytest.fixture
def fake_anthropic(_fake_anthropic_server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    """The running Anthropic fake with a clean script, no batches and zeroed counters."""
    _fake_anthropic_server.reset()
    yield _fake_anthropic_server
    _fake_anthropic_server.reset()


@pytest.fixture
def provider_kind(request: pytest.FixtureRequest) -> str:
    """The provider API a test talks to: "openai" unless parametrized (``KINDS``,
    ``indirect=True``)."""
    return str(getattr(request, "param", "openai"))


@pytest.fixture
def chat_fake(provider_kind: str, request: pytest.FixtureRequest) -> FakeProvider:
    """The fake of ``provider_kind``'s API (``fake_provider`` or ``fake_anthropic``)."""
    name = "fake_anthropic" if provider_kind == "anthropic" else "fake_provider"
    fake = request.getfixturevalue(name)
    assert isinstance(fake, FakeProvider)
    return fake
