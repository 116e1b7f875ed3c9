"""What only the HTTP transport can meet: status errors, unreachable servers, retries."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from agentflow_jobs.sdk import (
    AgentFlow,
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
)
from agentflow_jobs.server import create_app
from tests.fakes.handles import FakeProvider
from tests.server.live import LiveServer, live_server, provider_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_status_errors_keep_status_body_and_request_id(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    with live_server(fake_provider.base_url, tmp_path / "s.db") as server:
        with AgentFlow(base_url=server.url + "/v1/", api_key="key-a") as client, \
                pytest.raises(NotFoundError) as missing:
            client.batches.retrieve("batch_zzz")
        with AgentFlow(base_url=server.url, api_key="wrong") as client, \
                pytest.raises(AuthenticationError) as denied:
            client.batches.list()
    assert missing.value.status_code == 404 and missing.value.request_id.startswith("req_")
    assert missing.value.body == {"error": {"code": "not_found", "message": "no batch 'batch_zzz'"}}
    assert denied.value.status_code == 401 and "wrong" not in str(denied.value)


def test_unreachable_server_is_a_connection_error() -> None:
    with AgentFlow(base_url=f"http://127.0.0.1:{free_port()}", api_key="k", max_retries=0) as client:
        with pytest.raises(APIConnectionError, match="cannot reach"):
            client.batches.retrieve("batch_x")
        with pytest.raises(APIConnectionError):
            client.completions.summarize(["x"], summary_instructions="short")


def test_reads_are_retried_until_the_server_comes_up(fake_provider: FakeProvider, tmp_path: Path) -> None:
    port = free_port()
    app = create_app(provider_config=provider_config(fake_provider.base_url),
                     store_path=tmp_path / "s.db", api_keys=["k"])
    servers: list[LiveServer] = []
    starter = threading.Timer(0.15, lambda: servers.append(LiveServer(app, port)))
    started = time.monotonic()
    starter.start()
    try:
        with AgentFlow(base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=3) as client:
            assert client.batches.list() == []
        assert time.monotonic() - started >= 0.15
    finally:
        starter.join()
        for server in servers:
            server.stop()
