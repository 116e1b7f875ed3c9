"""The durable records of provider-native batches, in the batch store's database.

One row per *chunk*: the part of an AgentFlow batch sent as one provider batch. Its
``state`` says how far the native strategy (``native.py``) got, each step committed
before the next one starts:

``intent`` (indices, idempotency key) → ``uploaded`` (upload id) → ``created``
(provider batch id, before any wait; status and counts as last polled) → ``harvested``
(every result line recorded as a row, re-asks recorded as a new ``reask`` chunk in the
same transaction) → ``done`` (files discarded). ``failed``: the provider refused to
create it; ``abandoned``: cancelled before it was created.

The API is small on purpose: a PostgreSQL store implements the same methods.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentflow_jobs.providers.batch_api import BatchPhase, RemoteBatch

if TYPE_CHECKING:
    from agentflow_jobs.engine.store import BatchStore

__all__ = ["OPEN_STATES", "SCHEMA", "Chunk", "NativeRecords"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS native_chunks (
    batch_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    indices TEXT NOT NULL, lines TEXT, state TEXT NOT NULL, upload_id TEXT, provider_id TEXT,
    status TEXT, phase TEXT, total INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    expires_at REAL, raw TEXT NOT NULL DEFAULT '{}', error TEXT,
    created REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (batch_id, seq)
) WITHOUT ROWID;
"""
# chunks the strategy still has work on
OPEN_STATES = ("intent", "uploaded", "created", "harvested")
_COLUMNS = ("batch_id, seq, kind, key, indices, lines, state, upload_id, provider_id, status, phase,"
            " total, succeeded, failed, expires_at, raw, error, created")


@dataclass
class Chunk:
    """One chunk as recorded; ``lines`` holds a re-ask chunk's requests by item index."""

    batch_id: str
    seq: int
    kind: str  # ask | reask
    key: str
    indices: list[int]
    state: str
    lines: dict[str, Any] = field(default_factory=dict)
    upload_id: str | None = None
    provider_id: str | None = None
    status: str | None = None
    phase: BatchPhase | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    expires_at: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created: float = 0.0  # epoch seconds of the intent

    @property
    def metadata(self) -> dict[str, str]:
        """What the provider batch is tagged with, and found again by: its chunk, and the
        intent's time and size for a provider whose batches carry no metadata (Anthropic
        finds a running batch by creation time and request count)."""
        return {"agentflow_batch": self.batch_id, "agentflow_chunk": str(self.seq), "agentflow_key": self.key,
                "agentflow_lines": str(len(self.indices)), "agentflow_intent_at": f"{self.created:.3f}"}

    def remote(self) -> RemoteBatch:
        """The provider batch as last recorded (enough to read results and discard files)."""
        return RemoteBatch(id=self.provider_id or "", phase=self.phase or "ended", status=self.status or "",
                           total=self.total, succeeded=self.succeeded, failed=self.failed,
                           expires_at=self.expires_at, metadata=self.metadata, raw=self.raw)

    def describe(self) -> dict[str, Any]:
        """The provider batch for ``status`` and the SDK's ``Batch``."""
        return {"id": self.provider_id, "chunk": self.seq, "kind": self.kind, "state": self.state,
                "status": self.status, "total": self.total or len(self.indices),
                "completed": self.succeeded, "failed": self.failed, "expires_at": self.expires_at,
                "results_until": self.raw.get("results_until")}


class NativeRecords:
    """The chunk records of one batch store; every method is one short transaction."""

    def __init__(self, store: BatchStore) -> None:
        self.store = store

    def chunks(self, batch_id: str) -> list[Chunk]:
        rows = self.store._query(
            f"SELECT {_COLUMNS} FROM native_chunks WHERE batch_id=? ORDER BY seq", (batch_id,))
        return [_chunk(row) for row in rows]

    def is_recorded(self, provider_id: str) -> bool:
        """Whether a provider batch id is some chunk's already (``AnthropicBatchAPI.find``)."""
        return bool(self.store._query("SELECT 1 FROM native_chunks WHERE provider_id=? LIMIT 1", (provider_id,)))

    def add_intent(self, batch_id: str, kind: str, key: str, indices: Sequence[int],
                   lines: Mapping[str, Any] | None = None, *, done_seq: int | None = None) -> Chunk:
        """Record a new chunk; with ``done_seq``, mark that chunk harvested in the same
        transaction (its re-asks are never lost between the two)."""
        with self.store._tx() as db:
            if done_seq is not None:
                _set(db, batch_id, done_seq, state="harvested")
            seq = int(db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM native_chunks WHERE batch_id=?",
                                 (batch_id,)).fetchone()[0])
            now = time.time()
            db.execute(
                "INSERT INTO native_chunks (batch_id, seq, kind, key, indices, lines, state, created,"
                " updated) VALUES (?, ?, ?, ?, ?, ?, 'intent', ?, ?)",
                (batch_id, seq, kind, f"{key}-{seq}", json.dumps(list(indices)),
                 json.dumps(dict(lines)) if lines else None, now, now),
            )
        return Chunk(batch_id, seq, kind, f"{key}-{seq}", list(indices), "intent", dict(lines or {}), created=now)

    def set_upload(self, chunk: Chunk, upload_id: str | None) -> None:
        with self.store._tx() as db:
            _set(db, chunk.batch_id, chunk.seq, state="uploaded", upload_id=upload_id)
        chunk.state, chunk.upload_id = "uploaded", upload_id

    def set_remote(self, chunk: Chunk, remote: RemoteBatch) -> None:
        """The provider batch's id (committed before any wait) and what it last said."""
        values: dict[str, Any] = {
            "state": "created" if chunk.state in ("intent", "uploaded") else chunk.state,
            "provider_id": remote.id, "status": remote.status, "phase": remote.phase,
            "total": remote.total, "succeeded": remote.succeeded, "failed": remote.failed,
            "expires_at": remote.expires_at, "raw": json.dumps(remote.raw),
        }
        with self.store._tx() as db:
            _set(db, chunk.batch_id, chunk.seq, **values)
        values["raw"] = dict(remote.raw)
        for name, value in values.items():
            setattr(chunk, name, value)

    def set_state(self, chunk: Chunk, state: str, error: str | None = None) -> None:
        with self.store._tx() as db:
            _set(db, chunk.batch_id, chunk.seq, state=state, error=error)
        chunk.state, chunk.error = state, error

    def items_at(self, batch_id: str, indices: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The inputs of ``indices`` (read in slices: a chunk may hold 50,000)."""
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(indices), 500):
            part = list(indices[start:start + 500])
            rows = self.store._query(
                f"SELECT idx, input FROM items WHERE batch_id=? AND idx IN ({','.join('?' * len(part))})",
                (batch_id, *part))
            found.update((int(idx), json.loads(text)) for idx, text in rows)
        return found


def _set(db: sqlite3.Connection, batch_id: str, seq: int, **values: Any) -> None:
    names = ", ".join(f"{name}=?" for name in values)
    db.execute(f"UPDATE native_chunks SET {names}, updated=? WHERE batch_id=? AND seq=?",
               (*values.values(), time.time(), batch_id, seq))


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(
        batch_id=row[0], seq=int(row[1]), kind=row[2], key=row[3], indices=json.loads(row[4]),
        lines=json.loads(row[5]) if row[5] else {}, state=row[6], upload_id=row[7], provider_id=row[8],
        status=row[9], phase=row[10], total=int(row[11]), succeeded=int(row[12]), failed=int(row[13]),
        expires_at=row[14], raw=json.loads(row[15] or "{}"), error=row[16], created=float(row[17]),
    )
