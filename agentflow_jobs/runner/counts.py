"""What one run sent and got back: the counts of sync and batch mode alike.

A failed row nobody was charged for (the provider never answered: rate limited, down,
timed out) is *retryable*: the ledger keeps it as such and a normal apply sends it
again. Every other failure is final until ``retry``. A run whose every request went
unanswered found the provider down: its output is left as it was. What the answers
cost is the engine's ``usage.cost_usd``; an answer without one (its price unknown) is
counted as unpriced, never as $0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentflow_jobs.wire import ResultRow

if TYPE_CHECKING:
    from agentflow_jobs.runner.ledger import LedgerEntry

__all__ = ["KEEP_AT_MOST", "TRANSIENT_CODES", "RunCounts", "is_retryable", "provider_requests", "row_cost"]

# rows or items a run keeps in memory for its output at the most (its plan's rendered
# items, the ledger entries it recorded); past that they are read again
KEEP_AT_MOST = 10_000
# insufficient_quota stops a sync run as a whole; a row can still carry it (a native
# batch's re-ask), and credit added later answers it
TRANSIENT_CODES = frozenset(
    {"provider_error", "rate_limited", "timeout", "unreachable", "server_error", "api_error",
     "insufficient_quota"}
)


def is_retryable(row: ResultRow) -> bool:
    """A failed row nobody was charged for: kept as "retryable", which apply sends again."""
    code = (row.get("error") or {}).get("code")
    return (row.get("status") or "failed") == "failed" and code in TRANSIENT_CODES


def provider_requests(row: ResultRow) -> int:
    """The provider requests a result row took (0: the engine failed it without one)."""
    return int((row.get("usage") or {}).get("requests") or 0)


def row_cost(row: ResultRow) -> float | None:
    """USD one row's answer cost: 0 with no provider request, None when unpriced."""
    usage = row.get("usage") or {}
    cost = usage.get("cost_usd")
    if cost is not None:
        return float(cost)
    return None if provider_requests(row) else 0.0


@dataclass
class RunCounts:
    """What one job's run sent and got back, in either mode."""

    sent: int = 0  # sync: items that reached the provider; batch: items submitted
    completed: int = 0
    failed: int = 0
    retryable: int = 0  # of the failed: the provider never answered
    requests: int = 0  # provider requests, re-asks and retries included
    submitted: int = 0  # batches submitted
    collected: int = 0  # batches whose output was paged into the ledger
    cost_usd: float = 0.0  # what the priced answers cost
    unpriced: int = 0  # answers that came back without a price
    # the ledger entries this run recorded for keys new to the ledger, up to ``KEEP_AT_MOST``
    # (None past that): the output takes them as they are instead of reading them back
    entries: dict[str, LedgerEntry] | None = field(default_factory=dict)

    def keep_entry(self, key: str, entry: LedgerEntry) -> None:
        """Remember ``entry`` for the output, while there are not too many to keep."""
        if self.entries is not None:
            self.entries[key] = entry
            if len(self.entries) > KEEP_AT_MOST:
                self.entries = None

    def add_rows(self, rows: Iterable[ResultRow], *, reached: bool = False) -> tuple[int, int]:
        """Count rows that came back; returns ``(completed, failed)`` among them.

        ``reached`` (sync mode) also counts as sent each item that reached the provider.
        """
        done = failed = 0
        for row in rows:
            requests = provider_requests(row)
            self.requests += requests
            cost = row_cost(row)
            self.cost_usd += cost or 0.0
            self.unpriced += cost is None
            self.sent += reached and requests > 0
            if row.get("status") == "completed":
                done += 1
            else:
                failed += 1
                self.retryable += is_retryable(row)
        self.completed += done
        self.failed += failed
        return done, failed

    @property
    def answered(self) -> int:
        """Rows the provider answered (completed, or failed by its answer)."""
        return self.completed + self.failed - self.retryable

    @property
    def spent_usd(self) -> float | None:
        """What this run's answers cost; None when any came back unpriced."""
        return None if self.unpriced else self.cost_usd

    @property
    def provider_down(self) -> bool:
        """Every request of this run failed without an answer."""
        return self.answered == 0 and self.retryable > 0
