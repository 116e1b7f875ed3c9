"""The batch store: idempotent creation, first-write-wins rows, ordered pages, leases."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from agentflow_jobs.engine.store import SCHEMA_VERSION, BatchStore
from agentflow_jobs.engine.store_pg import SCHEMA, open_store
from agentflow_jobs.errors import StateError
from agentflow_jobs.wire import ResultRow, RowError, Usage

REQUEST = {"operation": "label", "categories": ["a", "b"]}


def new_batch(store: BatchStore, n: int = 5, **kwargs: object) -> str:
    items = [{"content": f"item {i}"} for i in range(n)]
    batch_id, _ = store.create(owner="me", request=REQUEST, items=items, model="m",
                               metadata={"k": "v"}, **kwargs)  # type: ignore[arg-type]
    return batch_id


def row(index: int, status: str = "completed") -> ResultRow:
    if status == "failed":
        return ResultRow(index=index, id=None, status="failed", result=None,
                         error=RowError(code="x", message="bad").model_dump(), usage=Usage().as_dict())
    return ResultRow(index=index, id=None, status="completed", result={"label": "a"}, error=None,
                     usage=Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4, requests=1).as_dict())


def test_create_and_read_back(store_location: str | Path) -> None:
    store = open_store(store_location)
    batch_id = new_batch(store)
    batch = store.get(batch_id, "me")
    assert batch is not None
    assert (batch.status, batch.total_items, batch.metadata, batch.model) == ("queued", 5, {"k": "v"}, "m")
    assert store.get(batch_id, "someone else") is None
    assert store.request(batch_id) == REQUEST
    assert [b.id for b in store.list("me", 10)] == [batch_id] and store.list("other", 10) == []


def test_idempotency_key_returns_the_same_batch_or_refuses(store_location: str | Path) -> None:
    store = open_store(store_location)
    first = new_batch(store, idempotency=("key", "hash-1"))
    again, created = store.create(owner="me", request=REQUEST, items=[], model=None, metadata={},
                                  idempotency=("key", "hash-1"))
    assert (again, created) == (first, False)
    with pytest.raises(ValueError):
        new_batch(store, idempotency=("key", "hash-2"))
    other, created = store.create(owner="you", request=REQUEST, items=[], model=None, metadata={},
                                  idempotency=("key", "hash-2"))
    assert created and other != first


def test_rows_first_write_wins_and_progress_counts_once(store_location: str | Path) -> None:
    store = open_store(store_location)
    batch_id = new_batch(store)
    assert store.record(batch_id, [row(3), row(1, "failed")]) == 2
    assert store.record(batch_id, [row(3, "failed"), row(0)]) == 1
    batch = store.get(batch_id)
    assert batch is not None
    assert (batch.progress.completed, batch.progress.failed) == (2, 1)
    assert batch.usage.total_tokens == 8
    assert store.pending_items(batch_id) == ([2, 4], [{"content": "item 2"}, {"content": "item 4"}])
    assert [r["index"] for r in store.results(batch_id, 0, 10)] == [0, 1, 3]
    assert store.results(batch_id, 3, 0) == [] and store.count_results(batch_id) == 3
    assert store.results(batch_id, 0, 10)[2]["status"] == "completed"


def test_iter_results_reads_in_chunks_in_order(store_location: str | Path) -> None:
    store = open_store(store_location)
    batch_id = new_batch(store, n=25)
    store.record(batch_id, [row(i) for i in reversed(range(25))])
    assert [r["index"] for r in store.iter_results(batch_id, chunk=4)] == list(range(25))


def test_a_live_holder_keeps_its_lease_and_a_release_frees_it(store_location: str | Path) -> None:
    one, two = open_store(store_location), open_store(store_location)
    batch_id = new_batch(one)
    assert one.claim() == batch_id
    assert two.claim() is None  # same live process, another worker: hands off
    one.release(batch_id)
    assert two.claim() == batch_id
    batch = two.get(batch_id)
    assert batch is not None and batch.status == "running" and batch.started_at


def test_a_dead_holder_loses_its_lease(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "s.db")
    batch_id = new_batch(store)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = store.worker_id.split(":")[0]
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("UPDATE batches SET lease_owner=?, lease_until=9e12, status='running'",
                   (f"{host}:{dead}:abc",))
    assert store.claim() == batch_id


def test_finished_batches_never_change_status(store_location: str | Path) -> None:
    store = open_store(store_location)
    batch_id = new_batch(store)
    assert store.set_status(batch_id, "cancelled", only_from=("queued",))
    assert not store.set_status(batch_id, "running", only_from=("queued", "running"))
    assert store.claim() is None
    assert store.status_counts() == {"cancelled": 1}


def test_newer_schema_and_garbage_files_are_state_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    BatchStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version=?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StateError, match="newer"):
        BatchStore(path)
    garbage = tmp_path / "g.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match=r"g\.db"):
        BatchStore(garbage)


_HOLDER = """
import sys, time
from agentflow_jobs.engine.store_pg import SCHEMA, open_store
store = open_store(sys.argv[1])
print(store.claim(), flush=True)
time.sleep(600)
"""


def test_a_killed_holder_frees_its_lease_at_once(store_location: str | Path) -> None:
    store = open_store(store_location)
    batch_id = new_batch(store)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(store_location)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == batch_id
    assert store.claim() is None  # alive, its lease 30 s away from expiring
    holder.kill()
    holder.wait()
    # SQLite: the pid is gone; PostgreSQL: the holder's session (and its worker lock) is
    for _ in range(100):
        if (claimed := store.claim()) is not None:
            break
        time.sleep(0.05)
    assert claimed == batch_id
    store.close()


def test_an_expired_lease_is_taken_over_and_its_holder_told(store_location: str | Path) -> None:
    one, two = open_store(store_location), open_store(store_location)
    batch_id = new_batch(one)
    assert one.claim() == batch_id and one.renew([batch_id]) == []
    with one._tx() as db:  # the holder missed its heartbeats
        db.execute("UPDATE batches SET lease_until = ? WHERE id = ?", (time.time() - 1, batch_id))
    assert two.claim() == batch_id
    assert one.renew([batch_id]) == [batch_id]  # lost: it stops working on it
    one.close()
    two.close()


def test_workers_claiming_at_once_never_share_a_batch(store_location: str | Path) -> None:
    stores = [open_store(store_location) for _ in range(4)]
    made = {new_batch(stores[0], n=1) for _ in range(24)}
    claimed: list[str] = []

    def work(store: BatchStore) -> None:
        while (batch_id := store.claim(exclude=claimed)) is not None:
            claimed.append(batch_id)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(claimed) == sorted(made)  # each once
    for store in stores:
        store.close()


def test_a_newer_postgresql_store_is_refused(pg_url: str) -> None:
    open_store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute(f"UPDATE {SCHEMA}.schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StateError, match="newer"):
        open_store(pg_url)


def test_an_unreachable_postgresql_store_is_a_state_error() -> None:
    with pytest.raises(StateError) as info:
        open_store("postgresql://svc:s3cr3t@127.0.0.1:1/nowhere")
    assert "postgresql://127.0.0.1:1/nowhere: cannot connect to the batch store" in str(info.value)
    assert "s3cr3t" not in str(info.value)
