"""pytest fixtures for the fake OpenAI-compatible provider.

``fake_provider``: the in-process fake (one server per session, reset around every
test). ``fake_provider_process``: the fake in its own process, for tests that kill the
client and need the provider to keep counting. ``fake_provider_factory`` starts extra
processes with options (latency, rpm).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

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
