"""The workspace lock in PostgreSQL: a session advisory lock on a dedicated connection.

The holder keeps one connection open for as long as it holds the lock. PostgreSQL frees
a session lock when its session ends, however the client dies: a ``kill -9`` closes the
socket and the server drops the lock at once (TCP keepalives cover a vanished machine),
so a stale lock never needs cleaning up, as with ``flock`` on a state file. The holder
writes its pid, host, command and start time into ``lock_holder`` (keyed by its backend
pid), and readers trust that row only while ``pg_locks`` shows that backend holding the
lock: a waiter or ``status`` names the holder, never a dead one.
"""

from __future__ import annotations

import contextlib
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agentflow_jobs.errors import LockedError, StateError
from agentflow_jobs.runner.lock import describe_holder
from agentflow_jobs.runner.state_pg import PgState, advisory_key, schema_for

if TYPE_CHECKING:
    from agentflow_jobs.runner.backend import PgLocation

__all__ = ["PgLock"]

_HOLDER = (
    "SELECT h.pid, h.host, h.command, h.started, l.pid FROM pg_locks l"
    " LEFT JOIN lock_holder h ON h.backend_pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint = ? AND l.objid::bigint = ?"
)


class PgLock:
    """An exclusive lock on one workspace's state, released with its session."""

    def __init__(self, location: PgLocation, *, command: str = "apply") -> None:
        self.location = location
        self.command = command
        self.key = advisory_key("lock", schema_for(location.key))
        self._session: PgState | None = None

    @property
    def held(self) -> bool:
        return self._session is not None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; LockedError names the holder."""
        if self._session is not None:
            return
        session = PgState(self.location)
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            while not session.query("SELECT pg_try_advisory_lock(?)", (self.key,))[0][0]:
                if time.monotonic() >= deadline:
                    info = self._holder(session) or {}
                    who = describe_holder(info)
                    raise LockedError(f"state {self.location} is locked by {who}", holder=info)
                time.sleep(0.05)
            self._write_holder(session)
        except BaseException:
            session.close()
            raise
        self._session = session

    def _write_holder(self, session: PgState) -> None:
        with session.transaction():
            # the lock is ours: any row left is a dead holder's
            session.execute("DELETE FROM lock_holder")
            session.execute(
                "INSERT INTO lock_holder (backend_pid, pid, host, command, started)"
                " VALUES (pg_backend_pid(), ?, ?, ?, ?)",
                (os.getpid(), os.uname().nodename, self.command,
                 time.strftime("%Y-%m-%dT%H:%M:%S%z")),
            )

    def _holder(self, session: PgState) -> dict[str, Any] | None:
        """The live holder as written in ``lock_holder`` (None: nobody holds the lock)."""
        rows = session.query(_HOLDER, ((self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF))
        if not rows:
            return None
        pid, host, command, started, backend = rows[0]
        if pid is None:  # taken a moment ago, its row not written yet
            return {"backend_pid": backend}
        info = {"pid": pid, "host": host, "command": command, "started": started}
        if run := session.running(pid, host):
            info["run"] = run
        return info

    def holder(self) -> dict[str, Any]:
        """Who holds the lock now ({} when nobody does)."""
        return self.probe() or {}

    def probe(self) -> dict[str, Any] | None:
        """Who holds the lock now, or None when it is free (for ``status``)."""
        if self._session is not None:
            return self._holder(self._session)
        session = PgState(self.location)
        try:
            return self._holder(session)
        finally:
            session.close()

    def release(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        with contextlib.suppress(StateError):
            session.execute("DELETE FROM lock_holder WHERE backend_pid = pg_backend_pid()")
            session.query("SELECT pg_advisory_unlock(?)", (self.key,))
        session.close()

    def __enter__(self) -> PgLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
