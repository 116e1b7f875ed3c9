"""Budgets: a job's ``execution.max_cost_usd`` and the run's ``--max-cost-usd``.

Before a job sends anything, its estimate (``plan``, at the price that will be paid)
must fit every budget that applies: the job's own, and what is left of the run's after
the jobs before it. A job that does not fit, or whose price is unknown while a budget
is set, is refused whole: nothing is sent, and the message says the estimate, the
budget and how to proceed.

While a job sends, the spend recorded for it in this run (the engine's price of every
answer that came back) is checked before each request is dispatched; once it reaches
a budget no new request goes out. Requests already in flight finish and their rows
are kept, so a budget is exceeded by at most the requests in flight when it was
reached (DESIGN §5, 9). The items not sent are left for a later apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentflow_jobs.runner.costs import CostEstimate
from agentflow_jobs.runner.counts import RunCounts

__all__ = ["Budget"]


@dataclass(frozen=True, slots=True)
class Budget:
    """The limits one job's sending must keep in this run (None: no limit)."""

    job_limit: float | None = None
    run_limit: float | None = None
    run_spent: float | None = 0.0  # by the jobs before this one in this run; None: unknown

    @property
    def active(self) -> bool:
        return self.job_limit is not None or self.run_limit is not None

    def refusal(self, cost: CostEstimate, to_send: int) -> str | None:
        """Why the job must not start (nothing sent), or None when it fits."""
        if not self.active or not to_send:
            return None
        estimate = cost.paid_usd
        if estimate is None:
            price = cost.basis.split("; input tokens:")[0]  # why the price is unknown
            return f"a budget is set but the price is {price}; nothing was sent"
        for what, left in self._limits():
            if left is None:
                return f"{what}: the spend of this run so far is unknown; nothing was sent"
            if estimate > left:
                return (
                    f"the estimated cost ${estimate:.6f} for {to_send} item(s) exceeds {what}; "
                    "nothing was sent (raise the budget, or send fewer items)"
                )
        return None

    def reached(self, counts: RunCounts) -> str | None:
        """Why sending must stop now, or None while the spend is under every budget."""
        if not self.active:
            return None
        if counts.unpriced:
            return "answers came back without a price, so the budget cannot be kept"
        spent = counts.cost_usd
        for what, left in self._limits():
            # a budget of $0 lets free answers through: it is reached by the first cent
            if left is None or spent > left or (spent == left and spent > 0):
                return f"{what} reached (${spent:.6f} spent on this job in this run)"
        return None

    def _limits(self) -> list[tuple[str, float | None]]:
        """``(budget as people read it, USD left of it)`` for each budget set."""
        limits: list[tuple[str, float | None]] = []
        if self.job_limit is not None:
            limits.append((f"execution.max_cost_usd {_usd(self.job_limit)}", self.job_limit))
        if self.run_limit is not None:
            spent = self.run_spent
            left = None if spent is None else self.run_limit - spent
            shown = "unknown" if spent is None else f"${spent:.6f}"
            limits.append((f"--max-cost-usd {_usd(self.run_limit)} ({shown} spent before this job)", left))
        return limits


def _usd(value: float) -> str:
    """A budget as its owner wrote it: $5, $0.5, $0.00005 (not 5e-05)."""
    return "$" + (f"{value:.8f}".rstrip("0").rstrip(".") or "0")
