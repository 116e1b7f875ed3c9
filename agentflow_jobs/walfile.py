"""Opening a SQLite file in WAL mode, safely when several processes open it at once.

Both the runner's state file and the engine's batch store are WAL files with
``synchronous=NORMAL``: readers never block the one writer, and a committed row survives
a killed process.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["BUSY_TIMEOUT_S", "connect"]

# how long a statement waits for another process's write lock
BUSY_TIMEOUT_S = 30.0


def connect(path: str | Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode (``sqlite3.Error`` if it cannot be).

    Turning a new file to WAL needs it to itself, and SQLite answers "database is locked"
    at once instead of waiting for the busy timeout: of two processes opening a new
    workspace together (``status`` while ``apply`` starts), one would fail. It waits here.
    """
    db = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=check_same_thread, timeout=BUSY_TIMEOUT_S
    )
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        db.close()
        raise
    return db
