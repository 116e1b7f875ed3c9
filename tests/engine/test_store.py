"""The batch store: idempotent creation, first-write-wins rows, ordered pages, leases."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agentflow_jobs.engine.store import SCHEMA_VERSION, BatchStore
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


def test_create_and_read_back(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "s.db")
    batch_id = new_batch(store)
    batch = store.get(batch_id, "me")
    assert batch is not None
    assert (batch.status, batch.total_items, batch.metadata, batch.model) == ("queued", 5, {"k": "v"}, "m")
    assert store.get(batch_id, "someone else") is None
    assert store.request(batch_id) == REQUEST
    assert [b.id for b in store.list("me", 10)] == [batch_id] and store.list("other", 10) == []


def test_idempotency_key_returns_the_same_batch_or_refuses(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "s.db")
    first = new_batch(store, idempotency=("key", "hash-1"))
    again, created = store.create(owner="me", request=REQUEST, items=[], model=None, metadata={},
                                  idempotency=("key", "hash-1"))
    assert (again, created) == (first, False)
    with pytest.raises(ValueError):
        new_batch(store, idempotency=("key", "hash-2"))
    other, created = store.create(owner="you", request=REQUEST, items=[], model=None, metadata={},
                                  idempotency=("key", "hash-2"))
    assert created and other != first


def test_rows_first_write_wins_and_progress_counts_once(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "s.db")
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


def test_iter_results_reads_in_chunks_in_order(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "s.db")
    batch_id = new_batch(store, n=25)
    store.record(batch_id, [row(i) for i in reversed(range(25))])
    assert [r["index"] for r in store.iter_results(batch_id, chunk=4)] == list(range(25))


def test_a_live_holder_keeps_its_lease_and_a_release_frees_it(tmp_path: Path) -> None:
    one, two = BatchStore(tmp_path / "s.db"), BatchStore(tmp_path / "s.db")
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


def test_finished_batches_never_change_status(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "s.db")
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
