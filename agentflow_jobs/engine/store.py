"""The durable batch store: batches, items and results; ``BatchStore`` is its interface
and the SQLite implementation (one WAL file), ``store_pg.PgBatchStore`` the PostgreSQL one.

Rows are keyed by ``(batch_id, index)`` so recording a result twice is harmless and a
restarted worker can ask exactly which items are still unfinished. A batch is worked by
whoever holds its lease; a lease whose holder process is gone (same host) or whose time
ran out can be taken over, which is how a restarted process resumes its batches. Every
query but the DDL, the lease claims and ``record`` is shared: ``_tx()`` and ``_query``
take SQLite's ``?`` placeholders on both.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic_core import to_json

from agentflow_jobs import walfile
from agentflow_jobs.engine.native_records import SCHEMA as NATIVE_SCHEMA
from agentflow_jobs.errors import StateError
from agentflow_jobs.wire import (
    TERMINAL_STATUSES,
    Batch,
    BatchProgress,
    BatchStatus,
    ResultRow,
    RowError,
    Usage,
)

__all__ = ["SCHEMA_VERSION", "BatchStore", "new_batch_id"]

SCHEMA_VERSION = 2  # 2: native_chunks (native_records.py)
LEASE_SECONDS = 30.0
# a batch in one of these is still to be worked (or wound down): the rest are terminal
_ACTIVE = tuple(s for s in get_args(BatchStatus) if s not in TERMINAL_STATUSES)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL,
    operation TEXT NOT NULL, model TEXT, request TEXT NOT NULL,
    total_items INTEGER NOT NULL, completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, usage TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}', error TEXT,
    created_at REAL NOT NULL, started_at REAL, completed_at REAL,
    lease_owner TEXT, lease_until REAL
);
CREATE INDEX IF NOT EXISTS batches_owner ON batches (owner, created_at);
CREATE INDEX IF NOT EXISTS batches_status ON batches (status);
CREATE TABLE IF NOT EXISTS items (
    batch_id TEXT NOT NULL, idx INTEGER NOT NULL, input TEXT NOT NULL,
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    batch_id TEXT NOT NULL, idx INTEGER NOT NULL, status TEXT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL, key TEXT NOT NULL, body_hash TEXT NOT NULL, batch_id TEXT NOT NULL,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;
"""


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex[:24]}"


class BatchStore:
    """Thread-safe access to one store file; every method is one short transaction."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = walfile.connect(self.path, check_same_thread=False)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: cannot open batch store: {exc}") from exc

    def _migrate(self) -> None:
        with self._lock:
            self._db.executescript(_SCHEMA + NATIVE_SCHEMA)
        with self._tx() as db:
            stamp_version(db, self.path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions -------------------------------------------------------------

    class _Tx:
        def __init__(self, store: BatchStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            self.store._db.execute("BEGIN IMMEDIATE")
            return self.store._db

        def __exit__(self, kind: object, exc: object, tb: object) -> None:
            try:
                self.store._db.execute("COMMIT" if kind is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def _tx(self) -> contextlib.AbstractContextManager[Any]:
        return BatchStore._Tx(self)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> builtins.list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- batches ------------------------------------------------------------------

    def create(
        self,
        *,
        owner: str,
        request: dict[str, Any],
        items: builtins.list[dict[str, Any]],
        model: str | None,
        metadata: dict[str, str],
        idempotency: tuple[str, str] | None = None,
    ) -> tuple[str, bool]:
        """Insert a batch; with ``(key, body_hash)`` return the earlier one for a replay.

        Returns ``(batch_id, created)``; raises ``ValueError`` on a key reused with
        another body (the caller turns that into a 409).
        """
        with self._tx() as db:
            if idempotency is not None:
                earlier = _replayed(db, owner, *idempotency)
                if earlier is not None:
                    return earlier, False
            batch_id = new_batch_id()
            db.execute(
                "INSERT INTO batches (id, owner, status, operation, model, request, total_items,"
                " metadata, created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                (batch_id, owner, request["operation"], model, json.dumps(request), len(items),
                 json.dumps(metadata), time.time()),
            )
            db.executemany(
                "INSERT INTO items VALUES (?, ?, ?)",
                ((batch_id, i, json.dumps(item)) for i, item in enumerate(items)),
            )
            if idempotency is not None:
                db.execute("INSERT INTO idempotency VALUES (?, ?, ?, ?)", (owner, *idempotency, batch_id))
        return batch_id, True

    def get(self, batch_id: str, owner: str | None = None) -> Batch | None:
        rows = self._query(f"SELECT {_BATCH_COLUMNS} FROM batches WHERE id=?", (batch_id,))
        if not rows or (owner is not None and rows[0][1] != owner):
            return None
        return _batch(rows[0])

    def spender(self, batch_id: str) -> tuple[str, str | None]:
        """The batch's owner and model, for its spend."""
        rows = self._query("SELECT owner, model FROM batches WHERE id=?", (batch_id,))
        return (str(rows[0][0]), rows[0][1]) if rows else ("unknown", None)

    def list(self, owner: str | None, limit: int) -> builtins.list[Batch]:
        where, args = ("WHERE owner=?", [owner]) if owner is not None else ("", [])
        rows = self._query(
            f"SELECT {_BATCH_COLUMNS} FROM batches {where} ORDER BY created_at DESC, rowid DESC"
            " LIMIT ?",
            [*args, limit],
        )
        return [_batch(r) for r in rows]

    def request(self, batch_id: str) -> dict[str, Any]:
        rows = self._query("SELECT request FROM batches WHERE id=?", (batch_id,))
        request: dict[str, Any] = json.loads(rows[0][0])
        return request

    def set_status(self, batch_id: str, status: str, *, only_from: Sequence[str] = _ACTIVE) -> bool:
        """Move an unfinished batch to ``status``; finished batches never change."""
        finished = time.time() if status in TERMINAL_STATUSES else None
        lease = ", lease_owner=NULL" if finished else ""  # a finished batch has no worker
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE batches SET status=?, completed_at=COALESCE(?, completed_at){lease}"
                f" WHERE id=? AND status IN ({_marks(only_from)})",
                (status, finished, batch_id, *only_from),
            )
            return bool(cur.rowcount > 0)

    def fail(self, batch_id: str, error: RowError) -> None:
        """Mark a batch failed as a whole (its request could not run at all)."""
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET status='failed', error=?, completed_at=?, lease_owner=NULL"
                " WHERE id=?",
                (error.model_dump_json(), time.time(), batch_id),
            )

    def status_counts(self) -> dict[str, int]:
        return {s: n for s, n in self._query("SELECT status, count(*) FROM batches GROUP BY status")}

    # -- leases -------------------------------------------------------------------

    def claim(self, exclude: Sequence[str] = ()) -> str | None:
        """Take the oldest unfinished batch nobody alive is working on."""
        now = time.time()
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, lease_owner, lease_until FROM batches"
                f" WHERE status IN ({_marks(_ACTIVE)}) ORDER BY created_at, rowid",
                _ACTIVE,
            ).fetchall()
            for batch_id, holder, until in rows:
                if batch_id in exclude or not _lease_free(holder, until, now, self.worker_id):
                    continue
                db.execute(
                    "UPDATE batches SET lease_owner=?, lease_until=?,"
                    " status=CASE status WHEN 'queued' THEN 'running' ELSE status END,"
                    " started_at=COALESCE(started_at, ?) WHERE id=?",
                    (self.worker_id, now + LEASE_SECONDS, now, batch_id),
                )
                return str(batch_id)
        return None

    def claim_if_free(self, batch_id: str) -> bool:
        """Take the lease of one batch if nobody alive holds it."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT lease_owner, lease_until FROM batches WHERE id=?", (batch_id,)
            ).fetchone()
            if row is None or not _lease_free(row[0], row[1], now, self.worker_id):
                return False
            db.execute(
                "UPDATE batches SET lease_owner=?, lease_until=? WHERE id=?",
                (self.worker_id, now + LEASE_SECONDS, batch_id),
            )
            return True

    def renew(self, batch_ids: Sequence[str]) -> builtins.list[str]:
        """Extend our leases; returns those of ``batch_ids`` we no longer hold."""
        until = time.time() + LEASE_SECONDS
        with self._tx() as db:
            return [b for b in batch_ids if not db.execute(
                "UPDATE batches SET lease_until=? WHERE id=? AND lease_owner=?",
                (until, b, self.worker_id)).rowcount]

    def release(self, batch_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET lease_owner=NULL, lease_until=NULL WHERE id=? AND lease_owner=?",
                (batch_id, self.worker_id),
            )

    # -- items and results --------------------------------------------------------

    def pending_items(self, batch_id: str) -> tuple[builtins.list[int], builtins.list[dict[str, Any]]]:
        """Indices and inputs of the items that have no result yet, in order."""
        rows = self._query(
            "SELECT i.idx, i.input FROM items i LEFT JOIN results r"
            " ON r.batch_id=i.batch_id AND r.idx=i.idx"
            " WHERE i.batch_id=? AND r.idx IS NULL ORDER BY i.idx",
            (batch_id,),
        )
        return [r[0] for r in rows], [json.loads(r[1]) for r in rows]

    def record(self, batch_id: str, rows: Sequence[ResultRow]) -> int:
        """Store finished rows (first write wins) and bump progress in one transaction."""
        if not rows:
            return 0
        with self._tx() as db:
            added_ok = added_failed = 0
            usage = Usage()
            for row in rows:
                cur = db.execute(
                    "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?)",
                    (batch_id, row["index"], row["status"], _row_json(row)),
                )
                if cur.rowcount:
                    added_ok += row["status"] == "completed"
                    added_failed += row["status"] == "failed"
                    usage = usage.add(Usage.model_validate(row["usage"]))
            old = db.execute("SELECT usage FROM batches WHERE id=?", (batch_id,)).fetchone()
            total = Usage.model_validate_json(old[0] if old else "{}").add(usage)
            db.execute(
                "UPDATE batches SET completed=completed+?, failed=failed+?, usage=? WHERE id=?",
                (added_ok, added_failed, total.model_dump_json(), batch_id),
            )
        return added_ok + added_failed

    def count_results(self, batch_id: str) -> int:
        return int(self._query("SELECT count(*) FROM results WHERE batch_id=?", (batch_id,))[0][0])

    def results(self, batch_id: str, offset: int, limit: int) -> builtins.list[dict[str, Any]]:
        rows = self._query(
            "SELECT row FROM results WHERE batch_id=? ORDER BY idx LIMIT ? OFFSET ?",
            (batch_id, limit, offset),
        )
        return [json.loads(r[0]) for r in rows]

    def iter_results(self, batch_id: str, chunk: int = 500) -> Iterator[dict[str, Any]]:
        """Every row in item order, read ``chunk`` rows at a time (memory stays flat)."""
        after = -1
        while True:
            rows = self._query(
                "SELECT idx, row FROM results WHERE batch_id=? AND idx>? ORDER BY idx LIMIT ?",
                (batch_id, after, chunk),
            )
            if not rows:
                return
            for _, row in rows:
                yield json.loads(row)
            after = rows[-1][0]


_BATCH_COLUMNS = (
    "id, owner, status, operation, model, total_items, completed, failed, usage, metadata,"
    " error, created_at, started_at, completed_at"
)


def stamp_version(db: Any, where: object) -> None:
    """Record the schema version in a store whose tables exist; a newer store is refused."""
    row = db.execute("SELECT version FROM schema_version").fetchone()
    if row is None or row[0] < SCHEMA_VERSION:  # older: its new tables were just created
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    elif row[0] > SCHEMA_VERSION:
        raise StateError(f"{where}: batch store schema {row[0]} is newer than this version "
                         f"({SCHEMA_VERSION}); upgrade agentflow-jobs")


def _batch(r: Sequence[Any]) -> Batch:
    return Batch(
        id=r[0], status=r[2], operation=r[3], model=r[4], total_items=r[5],
        progress=BatchProgress(completed=r[6], failed=r[7], total=r[5]),
        usage=Usage.model_validate_json(r[8]), metadata=json.loads(r[9]),
        error=RowError.model_validate_json(r[10]) if r[10] else None,
        created_at=r[11], started_at=r[12], completed_at=r[13],
    )


def _marks(values: Sequence[object]) -> str:
    """SQL placeholders for an ``IN (...)`` of ``values``."""
    return ",".join("?" * len(values))


def _replayed(db: sqlite3.Connection, owner: str, key: str, body_hash: str) -> str | None:
    """The batch an idempotency key already made; ``ValueError`` if its body differed."""
    found = db.execute(
        "SELECT body_hash, batch_id FROM idempotency WHERE owner=? AND key=?", (owner, key)
    ).fetchone()
    if found is None:
        return None
    if found[0] != body_hash:
        raise ValueError(key)
    return str(found[1])


def _lease_free(holder: str | None, until: float | None, now: float, me: str) -> bool:
    if holder is None or holder == me or until is None or until < now:
        return True
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _row_json(row: ResultRow) -> str:
    # NaN and Infinity (a model may answer them) are stored as null: exports stay valid JSON
    return to_json(row, inf_nan_mode="null").decode()
