"""The public surface: exports, sync/async twins in step, the async client, clean threads."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
from pathlib import Path

import pytest

import agentflow
import agentflow_jobs.errors
from agentflow_jobs.engine.store_pg import open_store
from agentflow_jobs.sdk import (
    AgentFlow,
    AsyncAgentFlow,
    NotFoundError,
    OutputError,
    UnprocessableEntityError,
)
from agentflow_jobs.sdk.batches import AsyncBatches, Batches
from agentflow_jobs.sdk.completions import AsyncCompletions, Completions
from tests.fakes.handles import FakeProvider
from tests.server.live import embedded_profile, write_profiles


def sdk_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "agentflow-sdk-loop"]


def test_all_is_sorted_and_exports_every_error_class() -> None:
    assert agentflow.__all__ == sorted(agentflow.__all__)
    assert {"AgentFlow", "AsyncAgentFlow", "Batch", "CompletionResult", "OutputPage"} <= set(agentflow.__all__)
    errors = {n for n in agentflow_jobs.errors.__all__ if n not in ("Problem", "status_error")}
    assert errors <= set(agentflow.__all__)
    assert all(hasattr(agentflow, name) for name in agentflow.__all__)


@pytest.mark.parametrize(("sync", "async_"), [(Completions, AsyncCompletions), (Batches, AsyncBatches)])
def test_sync_and_async_twins_have_the_same_methods(sync: type, async_: type) -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {n: inspect.signature(f) for n, f in vars(cls).items()
                if callable(f) and not n.startswith("_")}

    assert public(sync).keys() == public(async_).keys()
    for name, signature in public(sync).items():
        assert list(signature.parameters) == list(public(async_)[name].parameters), name


def test_async_client_on_both_transports(prod_profile: str, transport: str) -> None:
    async def main() -> None:
        async with AsyncAgentFlow.from_profile(prod_profile) as client:
            assert client.transport_name == ("embedded" if transport == "embedded" else "http")
            result = await client.completions.classify(["great", "awful"], categories=["positive", "negative"])
            assert [r["result"]["label"] for r in result.results] == ["positive", "negative"]
            batch = await client.batches.submit_and_wait("summarize", ["a long text"],
                                                         summary_instructions="short", timeout=20)
            rows = [row async for row in client.batches.iter_output(batch.id, page_size=1)]
            assert [r["status"] for r in rows] == ["completed"]
            for size in (0, -1):
                with pytest.raises(UnprocessableEntityError, match=r"^page_size: must be >= 1$"):
                    client.batches.iter_output(batch.id, page_size=size)
            with pytest.raises(OutputError, match="nodir") as caught:
                await client.batches.download_output(batch.id, "/nonexistent-dir/nodir/x.csv")
            assert caught.value.path == "/nonexistent-dir/nodir/x.csv"
            with pytest.raises(NotFoundError):
                await client.batches.retrieve("batch_nope")

    asyncio.run(main())


def test_close_joins_the_thread_and_dropping_a_client_does_too(prod_profile: str) -> None:
    before = len(sdk_threads())
    client = AgentFlow.from_profile(prod_profile)
    assert len(sdk_threads()) == before + 1
    client.close()
    assert len(sdk_threads()) == before
    client.completions.summarize(["text"], summary_instructions="short")  # reopens
    assert len(sdk_threads()) == before + 1
    del client
    gc.collect()
    assert len(sdk_threads()) == before


def test_embedded_batches_resume_in_a_later_client(
    fake_provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    store_location: str | Path,
) -> None:
    """(The server's restart is covered in tests/server/test_restart.py.) A profile's
    ``store:`` is a file or a ``postgresql://`` URL."""
    profile = embedded_profile(fake_provider.base_url, store_location)  # type: ignore[arg-type]
    config = write_profiles(tmp_path / "p.yaml", {"local": profile})
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(config))
    prod_profile = "local"
    fake_provider.script(latency_ms=100)
    items = [{"content": f"item {i} good"} for i in range(24)]
    first = AgentFlow.from_profile(prod_profile)
    batch = first.batches.submit("label", items, categories=["positive", "negative"])
    while first.batches.retrieve(batch.id).progress.completed < 4:
        time.sleep(0.005)
    first.close()  # stops the workers mid-batch
    # Look at the store itself: any call on the closed client would reopen its engine,
    # whose workers resume the batch and put a second window of requests in flight.
    store = open_store(store_location)
    stopped = store.get(batch.id)
    store.close()
    assert stopped is not None
    assert stopped.status == "running" and stopped.progress.completed < 24

    with AgentFlow.from_profile(prod_profile) as second:
        done = second.batches.wait(batch.id, timeout=20)
        rows = list(second.batches.iter_output(batch.id))
    assert done.status == "completed" and [r["index"] for r in rows] == list(range(24))
    assert fake_provider.count <= 24 + 4  # at most the in-flight window (concurrency 4) again


def test_embedded_store_location(
    fake_provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.base_url)
    with AgentFlow() as client:  # the built-in `local` profile
        batch = client.batches.submit_and_wait("summarize", ["x"], summary_instructions="s", timeout=20)
    home_store = Path.home() / ".local/share/agentflow/local.db"
    assert home_store.exists()
    monkeypatch.setenv("AGENTFLOW_STORE", str(tmp_path / "elsewhere.db"))
    with AgentFlow() as client:
        with pytest.raises(NotFoundError):
            client.batches.retrieve(batch.id)
        assert client.batches.list() == []
    assert (tmp_path / "elsewhere.db").exists()
