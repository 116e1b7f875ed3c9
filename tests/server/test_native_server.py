"""The server with a native-batch provider: the SDK over HTTP sees provider batches."""

from __future__ import annotations

from pathlib import Path

from agentflow_jobs.sdk import AgentFlow
from agentflow_jobs.server import create_app
from tests.fakes.handles import FakeProvider
from tests.server.live import LiveServer, provider_config


def test_a_served_batch_runs_through_the_providers_batch_api(fake_provider: FakeProvider, tmp_path: Path) -> None:
    config = provider_config(fake_provider.base_url, batch="native", batch_poll_interval=0.02,
                             batch_poll_max=0.1)
    server = LiveServer(create_app(provider_config=config, store_path=tmp_path / "store.db", api_keys=("k",)))
    try:
        with AgentFlow(base_url=server.url, api_key="k") as client:
            batch = client.batches.submit_and_wait("classify", ["great", "awful", "fine"],
                                                   categories=["positive", "negative"], poll_interval=0.05)
            rows = list(client.batches.iter_output(batch.id))
            seen = client.batches.retrieve(batch.id)
    finally:
        server.stop()
    assert batch.status == "completed"
    assert [r["result"]["label"] for r in rows] == ["positive", "negative", "positive"]
    [provider] = seen.provider_batches
    assert provider.id and provider.status == "completed" and provider.state == "done"
    assert (provider.total, provider.completed) == (3, 3)
    stats = fake_provider.batch_stats()
    assert stats["batches_created"] == 1 and stats["chat_requests"] == 0 and stats["files_live"] == 0
