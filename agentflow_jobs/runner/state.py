"""The runner's state: runs, jobs, the item ledger and batch records, behind one interface.

``State`` holds every query, written once in the SQL both backends speak (``?``
placeholders, ``INSERT … ON CONFLICT``, ``RETURNING``); a backend supplies the
connection, its DDL and how it migrates. ``SqliteState`` (here) is a WAL file, the
default; ``PgState`` (``state_pg.py``) is a schema in PostgreSQL, shared by CI runners.

The schema carries a version in ``meta``; opening an older state runs the forward
migrations in order, a newer or unreadable one is a ``StateError`` (exit 5). SQLite
commits use ``synchronous=NORMAL``: a committed row survives a killed process, which is
the failure the runner must tolerate (a power loss may lose the last few commits, which
are then simply re-sent).
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentflow_jobs import walfile
from agentflow_jobs.errors import StateError

__all__ = [
    "SCHEMA_VERSION", "BatchRecord", "JobRecord", "SqliteState", "State", "default_state_path",
]

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
_JOB_COLUMNS = (
    "name, spec_hash, input_fp, output_fp, output_path, last_apply, last_run, status, summary"
)
_BATCH_COLUMNS = (
    "seq, job, chunk, idempotency_key, batch_id, status, keys, total, completed, failed,"
    " provider"
)


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
        rows = state.query("SELECT items FROM batches WHERE seq = ?", (self.seq,))
        items: list[dict[str, Any]] = json.loads(rows[0][0]) if rows else []
        return items


class State(abc.ABC):
    """An open state. Use as a context manager, or call ``close()``."""

    #: where the state lives, as people see it (a path, or a password-free URL + key)
    name: str

    # -- what a backend provides ------------------------------------------------------

    @abc.abstractmethod
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one statement (``?`` placeholders)."""

    @abc.abstractmethod
    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of arguments."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: every statement in the block commits, or none does."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def after_copy(self) -> None:
        """Called once ``state migrate`` has copied rows in (SQLite needs nothing)."""
        return None

    def version(self) -> int:
        rows = self.query("SELECT value FROM meta WHERE key='schema_version'")
        return int(rows[0][0]) if rows else 0

    def _newer(self, version: int) -> StateError:
        return StateError(
            f"{self.name}: state schema version {version} is newer than this "
            f"agentflow-jobs understands ({SCHEMA_VERSION}); upgrade agentflow-jobs"
        )

    def _set_version(self, version: int) -> None:
        self.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )

    # runs -------------------------------------------------------------------------------

    def start_run(self, run_id: str, command: str) -> None:
        with self.transaction():
            self.execute(
                "INSERT INTO runs (id, command, started, status, pid, host) VALUES (?,?,?,?,?,?)",
                (run_id, command, time.time(), "running", os.getpid(), os.uname().nodename),
            )

    def finish_run(self, run_id: str, status: str, cost_usd: float | None = None) -> None:
        """Close the run; ``cost_usd`` is what its answers cost (None: unknown)."""
        with self.transaction():
            self.execute(
                "UPDATE runs SET finished = ?, status = ?, cost_usd = ? WHERE id = ?",
                (time.time(), status, cost_usd, run_id),
            )

    def running(self, pid: int, host: str) -> str | None:
        """The id of the run process ``pid`` on ``host`` has going, if any."""
        rows = self.query(
            "SELECT id FROM runs WHERE pid = ? AND host = ? AND status = 'running'"
            " ORDER BY started DESC LIMIT 1",
            (pid, host),
        )
        return str(rows[0][0]) if rows else None

    # jobs -------------------------------------------------------------------------------

    def job(self, name: str) -> JobRecord | None:
        rows = self.query(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE name = ?", (name,))
        if not rows:
            return None
        name, spec, input_fp, output_fp, path, applied, run, status, summary = rows[0]
        summary = json.loads(summary or "{}")
        return JobRecord(name, spec, input_fp, output_fp, path, applied, run, status, summary)

    def record_job(self, record: JobRecord) -> None:
        values = (
            record.name, record.spec_hash, record.input_fp, record.output_fp, record.output_path,
            record.last_apply, record.last_run, record.status, json.dumps(record.summary),
        )
        updates = ", ".join(f"{c} = excluded.{c}" for c in _JOB_COLUMNS.split(", ")[1:])
        with self.transaction():
            self.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"
                f" ON CONFLICT (name) DO UPDATE SET {updates}",
                values,
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
        with self.transaction():
            (row,) = self.query(
                "INSERT INTO batches (job, chunk, idempotency_key, status, keys, items, total,"
                " run_id, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING seq",
                (job, chunk, key, "submitting", json.dumps(keys), json.dumps(items), len(keys),
                 run_id, now, now),
            )
            seq = int(row[0])
            self.executemany(
                "INSERT INTO batch_keys (key, seq) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET seq = excluded.seq",
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
        with self.transaction():
            self.execute(
                "UPDATE batches SET status = ?, batch_id = COALESCE(?, batch_id),"
                " completed = COALESCE(?, completed), failed = COALESCE(?, failed),"
                " provider = COALESCE(?, provider), updated = ? WHERE seq = ?",
                (status, batch_id, completed, failed, shown, time.time(), seq),
            )
            if status.startswith(CLOSED_PREFIX):
                # the items were only kept to re-submit; the ledger holds the answers now
                self.execute("DELETE FROM batch_keys WHERE seq = ?", (seq,))
                self.execute("UPDATE batches SET items = '[]' WHERE seq = ?", (seq,))

    def batches(self, job: str | None = None, *, open_only: bool = False) -> list[BatchRecord]:
        clauses, args = [], []
        if job is not None:
            clauses.append("job = ?")
            args.append(job)
        if open_only:
            clauses.append("status NOT LIKE ?")
            args.append(CLOSED_PREFIX + "%")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self.query(f"SELECT {_BATCH_COLUMNS} FROM batches{where} ORDER BY seq", args)
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
            rows = self.query(f"SELECT key FROM batch_keys WHERE key IN ({marks})", block)
            found.update(r[0] for r in rows)
        return found


class SqliteState(State):
    """A state file: SQLite in WAL mode (readers never block the one writer)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot open state file: {exc}") from exc
        try:
            self.db = walfile.connect(self.path)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: {_describe(exc)}") from exc
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StateError(f"{self.path}: {_describe(exc)}") from exc

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, args).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def version(self) -> int:
        has_meta = self.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")
        return super().version() if has_meta else 0

    def _migrate(self) -> None:
        if self.version() == SCHEMA_VERSION:
            return
        # two processes may open a new or older file at once (`status` while `apply`
        # starts): the version that counts is the one read under the write lock, so the
        # second waits for the first and then finds nothing left to do
        with self.transaction():
            version = self.version()
            if version > SCHEMA_VERSION:
                raise self._newer(version)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                step = _MIGRATIONS[target]
                if isinstance(step, str):
                    for statement in step.split(";"):
                        if statement.strip():
                            self.db.execute(statement)
                else:
                    step(self.db)
                self._set_version(target)


# SQLite result codes that are about the disk or another process, not the file's content
_OUTSIDE_CAUSES = {
    5: f"another process kept it locked for {walfile.BUSY_TIMEOUT_S:.0f} s",
    13: "the disk is full",
    8: "the state file is read-only",
    10: "a disk I/O error occurred",
    14: "the state file cannot be opened",
}


def _describe(exc: sqlite3.DatabaseError) -> str:
    """Say whether the disk or the file is at fault, so users fix the right thing."""
    reason = _OUTSIDE_CAUSES.get(getattr(exc, "sqlite_errorcode", -1) & 0xFF)
    if reason:
        return f"cannot use the state file: {reason} ({exc}); nothing recorded was lost"
    return f"state file is corrupt or not a state file ({exc})"
