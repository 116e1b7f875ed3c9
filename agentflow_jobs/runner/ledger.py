"""The item ledger: every answer the provider gave, keyed by what was asked.

The key is ``content_hash(operation, fields, model, item)`` over exactly what is sent,
so an item that was already answered is found again across runs, across sync and
batch modes, across jobs that ask the same thing, and after its row moved in the input
file. Rows are committed in blocks (one transaction per chunk or output page) before
the runner counts them as done. Each row also keeps what its answer cost (the engine's
``usage.cost_usd``), added up over re-sends like its tokens; NULL when the price was
unknown, so a job's spend is unknown rather than short.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentflow_jobs.hashing import content_hash
from agentflow_jobs.runner.counts import is_retryable, row_cost
from agentflow_jobs.runner.state import State
from agentflow_jobs.wire import ResultRow

__all__ = ["Ledger", "LedgerEntry", "first_entry", "ledger_key"]

_BLOCK = 500
_UPSERT = (
    "INSERT INTO ledger (key, job, idx, status, row, attempts, tokens, cost_usd, mode, created)"
    " VALUES (?,?,?,?,?,1,?,?,?,?) ON CONFLICT(key) DO UPDATE SET"
    " job = excluded.job, idx = excluded.idx, status = excluded.status,"
    " row = excluded.row, attempts = ledger.attempts + 1,"
    " tokens = ledger.tokens + excluded.tokens,"
    " cost_usd = ledger.cost_usd + excluded.cost_usd, mode = excluded.mode,"
    " created = excluded.created"
)


def ledger_key(
    operation: str, fields: dict[str, Any], model: str | None, item: dict[str, Any]
) -> str:
    """The ledger key of one item as it will be sent."""
    return content_hash(operation, fields, model, item)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One item's answer (its result row) and what the ledger adds to it."""

    row: ResultRow
    status: str  # completed | failed | retryable (failed, nobody charged: sent again)
    attempts: int
    mode: str
    run_id: str | None = None  # the run that got this answer (None: written before runs were kept)


class Ledger:
    """Reads and writes ledger rows on an open state."""

    def __init__(self, state: State) -> None:
        self._state = state

    def statuses(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        """``key -> (status, written at)`` for those of ``keys`` already in the ledger."""
        found: dict[str, tuple[str, float]] = {}
        for start in range(0, len(keys), _BLOCK):
            block = list(keys[start : start + _BLOCK])
            marks = ",".join("?" * len(block))
            query = f"SELECT key, status, created FROM ledger WHERE key IN ({marks})"
            for key, status, created in self._state.query(query, block):
                found[key] = (status, created)
        return found

    def lookup(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Full entries for those of ``keys`` in the ledger."""
        found: dict[str, LedgerEntry] = {}
        for start in range(0, len(keys), _BLOCK):
            block = list(dict.fromkeys(keys[start : start + _BLOCK]))
            marks = ",".join("?" * len(block))
            query = f"SELECT key, idx, status, row, attempts, mode FROM ledger WHERE key IN ({marks})"
            for key, index, status, row, attempts, mode in self._state.query(query, block):
                found[key] = _entry(index, status, json.loads(row), attempts, mode)
        return found

    def commit(
        self,
        job: str,
        mode: str,
        rows: Iterable[tuple[str, int, ResultRow]],
        *,
        run_id: str | None = None,
    ) -> int:
        """Record ``(key, index, result_row)`` triples in one transaction; returns the count.

        A key seen before keeps counting its attempts, so provenance shows re-sends;
        ``run_id`` names the run that got these answers.
        """
        now = time.time()
        params = [(key, job, index, *_stored(row, run_id), mode, now) for key, index, row in rows]
        with self._state.transaction():
            self._state.executemany(_UPSERT, params)
        return len(params)

    def job_counts(self, job: str) -> dict[str, int]:
        """Items per status and tokens recorded under ``job``."""
        counts = {"completed": 0, "failed": 0, "retryable": 0, "tokens": 0}
        query = "SELECT status, COUNT(*), SUM(tokens) FROM ledger WHERE job = ? GROUP BY status"
        for status, count, tokens in self._state.query(query, (job,)):
            counts[status] = int(count)
            counts["tokens"] += int(tokens or 0)
        return counts

    def job_cost(self, job: str) -> float | None:
        """USD the answers recorded under ``job`` cost; None when any of them is unpriced."""
        query = (
            "SELECT SUM(cost_usd), COUNT(*) FILTER (WHERE cost_usd IS NULL AND tokens > 0)"
            " FROM ledger WHERE job = ?"
        )
        ((total, unpriced),) = self._state.query(query, (job,))
        return None if unpriced else float(total or 0.0)


def first_entry(index: int, row: ResultRow, mode: str, run_id: str | None) -> LedgerEntry:
    """The entry ``lookup`` gives for a key whose first row ``commit`` just recorded
    (its first attempt): a caller that knows the key is new need not read it back."""
    status, data = _kept(row, run_id)
    return _entry(index, status, data, 1, mode)


def _kept(row: ResultRow, run_id: str | None) -> tuple[str, dict[str, Any]]:
    """A row's status in the ledger, and what its JSON keeps (result, error, usage, run)."""
    status = "retryable" if is_retryable(row) else row.get("status") or "failed"
    data = {"result": row.get("result"), "error": row.get("error"), "usage": row.get("usage") or {},
            "run": run_id}
    return status, data


def _stored(row: ResultRow, run_id: str | None) -> tuple[str, str, int, float | None]:
    """A row as the ledger keeps it: ``(status, row JSON, tokens, cost)``."""
    status, data = _kept(row, run_id)
    return status, json.dumps(data), int(data["usage"].get("total_tokens") or 0), row_cost(row)


def _entry(index: int, status: str, data: dict[str, Any], attempts: int, mode: str) -> LedgerEntry:
    """A ledger row read back (the JSON keeps result, error, usage and the run)."""
    row = ResultRow(
        index=index,
        id=None,
        status="completed" if status == "completed" else "failed",
        result=data.get("result"),
        error=data.get("error"),
        usage=data.get("usage") or {},
    )
    return LedgerEntry(row, status, attempts, mode, data.get("run"))
