"""``client``: the same SDK behaviours on both transports (embedded and HTTP)."""

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
    transport: str, fake_provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A `prod` profile in $AGENTFLOW_CONFIG pointing at the engine over ``transport``."""
    config = tmp_path / "profiles.yaml"
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(config))
    if transport == "embedded":
        write_profiles(config, {"prod": embedded_profile(fake_provider.base_url, tmp_path / "e.db")})
        yield "prod"
        return
    with live_server(fake_provider.base_url, tmp_path / "server.db") as server:
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
