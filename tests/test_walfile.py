"""Processes opening one SQLite file at once: the state file and the engine's batch store."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentflow_jobs.engine.store import BatchStore
from agentflow_jobs.runner.state import _V1, SCHEMA_VERSION, SqliteState

OPENERS = 6


def _open_at_once(kind: str, path: str, barrier: Any, outcomes: Any) -> None:
    barrier.wait()
    try:
        if kind == "state":
            with SqliteState(path) as state:
                outcomes.put(state.version())
        else:
            BatchStore(path).close()
            outcomes.put("open")
    except Exception as exc:  # whatever it was, the parent shows it
        outcomes.put(f"{type(exc).__name__}: {exc}")


def _open_together(kind: str, path: Path) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    barrier, outcomes = context.Barrier(OPENERS), context.Queue()
    openers = [context.Process(target=_open_at_once, args=(kind, str(path), barrier, outcomes))
               for _ in range(OPENERS)]
    for opener in openers:
        opener.start()
    seen = [outcomes.get(timeout=60) for _ in openers]
    for opener in openers:
        opener.join(timeout=60)
    return seen


@pytest.mark.parametrize("start", ["new", "version 1"])
def test_processes_opening_one_state_file_at_once_each_find_it_current(tmp_path: Path, start: str) -> None:
    """`status` run while `apply` started once failed: "database is locked" (turning a new
    file to WAL does not wait) or "duplicate column name" (both ran the migrations)."""
    path = tmp_path / "state.db"
    if start == "version 1":
        db = sqlite3.connect(path)  # as version 1 wrote it: in WAL mode
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_V1 + "; INSERT INTO meta VALUES ('schema_version', '1')")
        db.close()
    assert _open_together("state", path) == [SCHEMA_VERSION] * OPENERS
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(ledger)")]
    db.close()
    assert columns.count("cost_usd") == 1


def test_processes_opening_a_new_batch_store_at_once_all_open_it(tmp_path: Path) -> None:
    assert _open_together("store", tmp_path / "store.db") == ["open"] * OPENERS
