"""Two service instances on one PostgreSQL store: tenants, idempotency keys, exports and
cancels work whichever instance a request lands on (a load balancer's view)."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentflow_jobs.engine.store_pg import open_store
from tests.fakes.handles import FakeProvider
from tests.server.live import LiveServer, live_server
from tests.server.test_api import LABEL, A, B, wait_done


@pytest.fixture
def pair(fake_provider: FakeProvider, pg_url: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        live_server(fake_provider.base_url, pg_url) as one,  # type: ignore[arg-type]
        live_server(fake_provider.base_url, pg_url) as two,  # type: ignore[arg-type]
        _client(one) as first,
        _client(two) as second,
    ):
        yield first, second


def _client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def test_a_batch_made_on_one_instance_is_read_exported_and_kept_apart_on_the_other(
    pair: tuple[httpx.Client, httpx.Client], fake_provider: FakeProvider,
) -> None:
    first, second = pair
    batch = first.post("/v1/batches", json=LABEL, headers=A).json()
    done = wait_done(second, batch["id"])
    assert done["status"] == "completed" and done["progress"]["completed"] == 3
    assert fake_provider.count == 3  # worked once, by one of the two
    rows = list(csv.DictReader(io.StringIO(
        second.get(f"/v1/batches/{batch['id']}/output", params={"format": "csv"}, headers=A).text)))
    assert [r["index"] for r in rows] == ["0", "1", "2"]
    assert second.get(f"/v1/batches/{batch['id']}", headers=B).status_code == 404
    assert [b["id"] for b in second.get("/v1/batches", headers=A).json()["data"]] == [batch["id"]]
    assert second.get("/v1/batches", headers=B).json()["data"] == []


def test_an_idempotency_key_replays_on_the_other_instance(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    first, second = pair
    headers = {**A, "Idempotency-Key": "nightly-7"}
    made = first.post("/v1/batches", json=LABEL, headers=headers)
    again = second.post("/v1/batches", json=LABEL, headers=headers)
    assert made.status_code in (200, 201)
    assert again.json()["id"] == made.json()["id"]
    other = second.post("/v1/batches", json={**LABEL, "items": [{"content": "x"}]}, headers=headers)
    assert other.status_code == 409


def test_a_cancel_on_the_other_instance_stops_the_worker_keeping_finished_rows(
    pair: tuple[httpx.Client, httpx.Client], fake_provider: FakeProvider,
) -> None:
    first, second = pair
    fake_provider.script(latency_ms=50)
    items = [{"content": f"item {i} great"} for i in range(200)]
    batch = first.post("/v1/batches", json={**LABEL, "items": items}, headers=A).json()
    while second.get(f"/v1/batches/{batch['id']}", headers=A).json()["progress"]["completed"] < 5:
        time.sleep(0.01)
    second.post(f"/v1/batches/{batch['id']}/cancel", headers=A)
    done = wait_done(first, batch["id"])
    assert done["status"] == "cancelled"
    kept = done["progress"]["completed"]
    assert 5 <= kept < 200 and fake_provider.count < 200
    page = second.get(f"/v1/batches/{batch['id']}/output", headers=A).json()
    assert page["total"] == kept


def test_instances_racing_on_one_idempotency_key_make_one_batch(pg_url: str) -> None:
    stores = [open_store(pg_url) for _ in range(6)]
    made: list[tuple[str, bool]] = []
    barrier = threading.Barrier(len(stores))

    def create(store: Any) -> None:
        barrier.wait()
        made.append(store.create(owner="me", request={"operation": "label"}, items=[{"content": "x"}],
                                 model=None, metadata={}, idempotency=("k", "h")))

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len({batch_id for batch_id, _ in made}) == 1 and len(made) == len(stores)
    assert sum(created for _, created in made) == 1
    for store in stores:
        store.close()
