"""The state file: SQLite (WAL) holding runs, jobs, the item ledger and batch ids.

The schema carries a version in ``meta``; opening an older file runs the forward
migrations in order, a newer or unreadable file is a ``StateError`` (exit 5). Commits
use ``synchronous=NORMAL``: a committed row survives a killed process, which is the
failure the runner must tolerate (a power loss may lose the last few commits, which
are then simply re-sent).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentflow_jobs.errors import StateError

__all__ = ["SCHEMA_VERSION", "BatchRecord", "JobRecord", "State", "default_state_path"]

SCHEMA_VERSION = 3

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, command TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL, pid INTEGER, host TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY, spec_hash TEXT, input_fp TEXT, output_fp TEXT, output_path TEXT,
    last_apply REAL, last_run TEXT, status TEXT, summary TEXT
);
CREATE TABLE IF NOT EXISTS ledger (
    key TEXT PRIMARY KEY, job TEXT NOT NULL, idx INTEGER NOT NULL, status TEXT NOT NULL,
    row TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1, tokens INTEGER NOT NULL DEFAULT 0,
    mode TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, chunk INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE, batch_id TEXT, status TEXT NOT NULL,
    keys TEXT NOT NULL, items TEXT NOT NULL, total INTEGER NOT NULL, completed INTEGER DEFAULT 0,
    failed INTEGER DEFAULT 0, run_id TEXT, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_job ON batches (job, status);
CREATE TABLE IF NOT EXISTS batch_keys (key TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""

# v2: what each answer cost (USD at the price when it came back; NULL: unknown, and for
# every row written before prices were kept)
_V2 = """
ALTER TABLE ledger ADD COLUMN cost_usd REAL;
ALTER TABLE runs ADD COLUMN cost_usd REAL
"""

# v3: the provider's own batches running a batch, as the service last described them
_V3 = "ALTER TABLE batches ADD COLUMN provider TEXT"

# version N -> the SQL (or callable) that upgrades a version N-1 file to N
_MIGRATIONS: dict[int, str | Callable[[sqlite3.Connection], None]] = {1: _V1, 2: _V2, 3: _V3}
# a batch row stays open (its keys reserved) until its output is in the ledger
CLOSED_PREFIX = "collected"


def default_state_path(first_path: str | Path) -> Path:
    """``.agentflow/state.db`` next to the specs directory named by ``first_path``."""
    path = Path(first_path).resolve()
    specs_dir = path if path.is_dir() else path.parent
    return specs_dir.parent / ".agentflow" / "state.db"


@dataclass(frozen=True)
class JobRecord:
    """What the state remembers about a job's last apply."""

    name: str
    spec_hash: str | None
    input_fp: str | None
    output_fp: str | None
    output_path: str | None
    last_apply: float | None
    last_run: str | None
    status: str | None
    summary: dict[str, Any]


@dataclass(frozen=True)
class BatchRecord:
    """One chunk sent (or about to be sent) as a batch."""

    seq: int
    job: str
    chunk: int
    idempotency_key: str
    batch_id: str | None
    status: str
    keys: list[str]
    total: int
    completed: int
    failed: int
    # the provider batches running it (``provider.batch: native``), as last seen
    provider: list[dict[str, Any]] = field(default_factory=list)

    def items(self, state: State) -> list[dict[str, Any]]:
        row = state.db.execute("SELECT items FROM batches WHERE seq = ?", (self.seq,)).fetchone()
        items: list[dict[str, Any]] = json.loads(row[0]) if row else []
        return items


class State:
    """An open state file. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{self.path}: cannot open state file: {exc}") from exc
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StateError(f"{self.path}: {_describe(exc)}") from exc

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _version(self) -> int:
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: state schema version {version} is newer than this "
                f"agentflow-jobs understands ({SCHEMA_VERSION}); upgrade agentflow-jobs"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            step = _MIGRATIONS[target]
            with self.transaction() as db:
                if isinstance(step, str):
                    for statement in step.split(";"):
                        if statement.strip():
                            db.execute(statement)
                else:
                    step(db)
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(target),),
                )

    # runs -------------------------------------------------------------------------------

    def start_run(self, run_id: str, command: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (id, command, started, status, pid, host) VALUES (?,?,?,?,?,?)",
                (run_id, command, time.time(), "running", os.getpid(), os.uname().nodename),
            )

    def finish_run(self, run_id: str, status: str, cost_usd: float | None = None) -> None:
        """Close the run; ``cost_usd`` is what its answers cost (None: unknown)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, status = ?, cost_usd = ? WHERE id = ?",
                (time.time(), status, cost_usd, run_id),
            )

    # jobs -------------------------------------------------------------------------------

    def job(self, name: str) -> JobRecord | None:
        row = self.db.execute(
            "SELECT name, spec_hash, input_fp, output_fp, output_path, last_apply, last_run,"
            " status, summary FROM jobs WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return None
        name, spec_hash, input_fp, output_fp, output_path, last_apply, last_run, status, summary = (
            row
        )
        return JobRecord(
            name,
            spec_hash,
            input_fp,
            output_fp,
            output_path,
            last_apply,
            last_run,
            status,
            json.loads(summary or "{}"),
        )

    def record_job(self, record: JobRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    record.name,
                    record.spec_hash,
                    record.input_fp,
                    record.output_fp,
                    record.output_path,
                    record.last_apply,
                    record.last_run,
                    record.status,
                    json.dumps(record.summary),
                ),
            )

    # batches ----------------------------------------------------------------------------

    def add_batch_intent(
        self,
        job: str,
        chunk: int,
        key: str,
        keys: list[str],
        items: list[dict[str, Any]],
        run_id: str,
    ) -> BatchRecord:
        """Record a chunk before it is submitted, so a crash re-submits the same key."""
        now = time.time()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO batches (job, chunk, idempotency_key, status, keys, items, total,"
                " run_id, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    job,
                    chunk,
                    key,
                    "submitting",
                    json.dumps(keys),
                    json.dumps(items),
                    len(keys),
                    run_id,
                    now,
                    now,
                ),
            )
            seq = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT OR REPLACE INTO batch_keys (key, seq) VALUES (?, ?)",
                ((k, seq) for k in keys),
            )
        return BatchRecord(seq, job, chunk, key, None, "submitting", keys, len(keys), 0, 0)

    def update_batch(
        self,
        seq: int,
        *,
        status: str,
        batch_id: str | None = None,
        completed: int | None = None,
        failed: int | None = None,
        provider: list[dict[str, Any]] | None = None,
    ) -> None:
        shown = json.dumps(provider) if provider is not None else None
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET status = ?, batch_id = COALESCE(?, batch_id),"
                " completed = COALESCE(?, completed), failed = COALESCE(?, failed),"
                " provider = COALESCE(?, provider), updated = ? WHERE seq = ?",
                (status, batch_id, completed, failed, shown, time.time(), seq),
            )
            if status.startswith(CLOSED_PREFIX):
                # the items were only kept to re-submit; the ledger holds the answers now
                db.execute("DELETE FROM batch_keys WHERE seq = ?", (seq,))
                db.execute("UPDATE batches SET items = '[]' WHERE seq = ?", (seq,))

    def batches(self, job: str | None = None, *, open_only: bool = False) -> list[BatchRecord]:
        query = (
            "SELECT seq, job, chunk, idempotency_key, batch_id, status, keys, total,"
            " completed, failed, provider FROM batches"
        )
        clauses, args = [], []
        if job is not None:
            clauses.append("job = ?")
            args.append(job)
        if open_only:
            clauses.append("status NOT LIKE ?")
            args.append(CLOSED_PREFIX + "%")
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self.db.execute(query + " ORDER BY seq", args).fetchall()
        return [
            BatchRecord(
                r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8] or 0, r[9] or 0,
                json.loads(r[10]) if r[10] else [],
            )
            for r in rows
        ]

    def keys_in_open_batches(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            block = keys[start : start + 500]
            marks = ",".join("?" * len(block))
            found.update(
                r[0]
                for r in self.db.execute(
                    f"SELECT key FROM batch_keys WHERE key IN ({marks})", block
                )
            )
        return found


# SQLite result codes that are about the disk, not the file's content
_DISK_ERRORS = {
    13: "the disk is full",
    8: "the state file is read-only",
    10: "a disk I/O error occurred",
    14: "the state file cannot be opened",
}


def _describe(exc: sqlite3.DatabaseError) -> str:
    """Say whether the disk or the file is at fault, so users fix the right thing."""
    reason = _DISK_ERRORS.get(getattr(exc, "sqlite_errorcode", -1) & 0xFF)
    if reason:
        return f"cannot use the state file: {reason} ({exc}); nothing recorded was lost"
    return f"state file is corrupt or not a state file ({exc})"
