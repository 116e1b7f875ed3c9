"""``client``: the same SDK behaviours on both transports (embedded and HTTP); a test
parametrized over ``provider_kind`` also runs them with each provider API behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentflow_jobs.sdk import AgentFlow
from tests.fakes.handles import FakeProvider
from tests.server.live import embedded_profile, http_profile, live_server, write_profiles


@pytest.fixture(params=["embedded", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def prod_profile(
    transport: str, chat_fake: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A `prod` profile in $AGENTFLOW_CONFIG pointing at the engine over ``transport``,
    the engine's provider the fake of ``provider_kind`` (OpenAI's unless parametrized)."""
    config = tmp_path / "profiles.yaml"
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(config))
    kind = chat_fake.kind
    if transport == "embedded":
        write_profiles(config, {"prod": embedded_profile(chat_fake.base_url, tmp_path / "e.db", kind)})
        yield "prod"
        return
    with live_server(chat_fake.base_url, tmp_path / "server.db", kind=kind) as server:
        write_profiles(config, {"prod": http_profile(server)})
        yield "prod"


@pytest.fixture
def client(prod_profile: str) -> Iterator[AgentFlow]:
    threads = set(threading.enumerate())
    sdk = AgentFlow.from_profile(prod_profile)
    yield sdk
    sdk.close()
    leaked = [t for t in threading.enumerate() if t not in threads and t.name == "agentflow-sdk-loop"]
    assert not leaked, f"SDK loop threads left running: {leaked}"
