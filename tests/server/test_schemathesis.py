"""Property-based requests from the app's own OpenAPI document never get a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from agentflow_jobs.server import create_app
from tests.fakes.handles import FakeProvider
from tests.server.live import LiveServer, provider_config

KEY = "key-a"
schema = schemathesis.openapi.from_dict(
    create_app(provider_config=provider_config("http://127.0.0.1:9/v1"), store_path="unused.db",
               api_keys=[KEY]).openapi()
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    fake = FakeProvider()
    store: Path = tmp_path_factory.mktemp("schemathesis") / "store.db"
    app = create_app(provider_config=provider_config(fake.base_url), store_path=store,
                     api_keys=[KEY], max_body_bytes=256 * 1024)
    live = LiveServer(app)
    yield live
    live.stop()
    fake.close()


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, server: LiveServer) -> None:
    case.call_and_validate(
        base_url=server.url,
        headers={"Authorization": f"Bearer {KEY}"},
        checks=[not_a_server_error],
        timeout=10,
    )
