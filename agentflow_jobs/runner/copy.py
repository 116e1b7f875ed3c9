"""``state migrate``: copy a state, row for row, into another (a file into PostgreSQL).

Both states are locked for the copy, and the target must hold nothing yet: a copy never
merges into (or overwrites) a workspace someone already applies to. The rows go over in
one transaction on the target, a page at a time (memory stays flat), so a failed copy
leaves the target as empty as it was, and the source is never changed.
"""

from __future__ import annotations

from pathlib import Path

from agentflow_jobs.errors import StateError
from agentflow_jobs.runner.backend import PgLocation, as_location
from agentflow_jobs.runner.state import State
from agentflow_jobs.runner.workspace import Workspace

__all__ = ["copy_state"]

# schema version 2's columns, primary key first (pages are read in key order)
_COLUMNS = {
    "runs": "id, command, started, finished, status, pid, host, cost_usd",
    "jobs": "name, spec_hash, input_fp, output_fp, output_path, last_apply, last_run, status,"
    " summary",
    "ledger": "key, job, idx, status, row, attempts, tokens, mode, created, cost_usd",
    "batches": "seq, job, chunk, idempotency_key, batch_id, status, keys, items, total,"
    " completed, failed, run_id, created, updated, provider",
    "batch_keys": "key, seq",
}
_PAGE = 1000


def copy_state(
    source: Path | str | PgLocation, target: Path | str | PgLocation, *, lock_timeout: float = 0.0
) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; rows copied per table."""
    source, target = as_location(source), as_location(target)
    if source == target:
        raise StateError(f"{target}: the state cannot be copied onto itself")
    if isinstance(source, Path) and not source.exists():
        raise StateError(f"{source}: no state file to copy (run apply first, or pass --state)")
    with (
        Workspace(source, lock_timeout=lock_timeout, command="state migrate") as src,
        Workspace(target, lock_timeout=lock_timeout, command="state migrate") as dst,
    ):
        held = _rows_held(dst.state)
        if held:
            raise StateError(
                f"{target}: already holds a state ({held}); nothing was copied "
                "(choose another workspace with --state-key)"
            )
        with dst.state.transaction():
            counts = {table: _copy_table(src.state, dst.state, table) for table in _COLUMNS}
            dst.state.after_copy()
    return counts


def _rows_held(state: State) -> str:
    """``3 jobs, 120 ledger rows``: what the state holds already ('' when empty)."""
    held = []
    for table in _COLUMNS:
        (count,) = state.query(f"SELECT COUNT(*) FROM {table}")[0]
        if count:
            held.append(f"{count} {table} rows")
    return ", ".join(held)


def _copy_table(source: State, target: State, table: str) -> int:
    columns = _COLUMNS[table]
    key = columns.split(",")[0]
    marks = ",".join("?" * len(columns.split(",")))
    insert = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    copied, rows = 0, source.query(f"SELECT {columns} FROM {table} ORDER BY {key} LIMIT {_PAGE}")
    while rows:
        target.executemany(insert, rows)
        copied += len(rows)
        rows = source.query(
            f"SELECT {columns} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT {_PAGE}",
            (rows[-1][0],),
        )
    return copied
