"""What the engine's answers cost, per tenant and model, since the process started.

The executor prices each row as it finishes (``usage.cost_usd``); the batch service
adds every row it hands out or records here, and ``/metrics`` exports the sums. A row
with tokens but no price (an unknown model) is counted as unpriced, never as $0.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from agentflow_jobs.wire import ResultRow

__all__ = ["Spend"]


class Spend:
    """USD spent and unpriced rows, keyed by ``(tenant, model)``."""

    def __init__(self) -> None:
        self.usd: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.unpriced: Counter[tuple[str, str]] = Counter()

    def add(self, tenant: str, model: str | None, rows: Iterable[ResultRow]) -> None:
        key = (tenant, model or "default")
        for row in rows:
            usage = row.get("usage") or {}
            cost = usage.get("cost_usd")
            if cost is not None:
                self.usd[key] += float(cost)
            elif usage.get("requests"):
                self.unpriced[key] += 1

    def keys(self) -> list[tuple[str, str]]:
        """Every ``(tenant, model)`` seen, sorted."""
        return sorted(set(self.usd) | set(self.unpriced))
