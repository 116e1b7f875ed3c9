"""What a job will cost before it runs: its model's price and the plan's estimate.

The price comes from the job's profile, the way the engine that answers will price it
(``pricing.price_for`` with the provider's type, base URL and ``provider.prices``); a
remote service's provider is not known here, so its model is priced by name. A model
with no known price is unknown (None, with a basis saying why), never $0.

The estimate prices the job's token totals once (never item by item): the input tokens
of every item's rendered prompt, plus one answer's guessed output tokens per item.
In sync mode, and in batch mode on the engine's own workers (``provider.batch: engine``,
the default: they ask the provider's chat endpoint), the sync price is the one paid and
the one a budget compares. A batch-mode job on a profile whose provider says ``batch:
native`` runs through the provider's batch API and pays the batch price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentflow_jobs.errors import ConfigError
from agentflow_jobs.pricing import (
    OUTPUT_TOKEN_METHOD,
    PROMPT_TOKEN_METHOD,
    Price,
    cost_usd,
    price_for,
)
from agentflow_jobs.sdk.profiles import Profile

__all__ = ["NOTHING_TO_SEND", "CostEstimate", "JobPrice", "estimate_cost", "job_price", "total_cost"]


@dataclass(frozen=True, slots=True)
class JobPrice:
    """The price of the model a job runs on, or why it is unknown."""

    price: Price | None
    basis: str  # the price source, or why no price is known
    # the profile's provider runs batches through its own batch API (its batch price)
    native_batch: bool = False


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """A job's estimated cost at the sync and the batch price (None: unknown, never 0)."""

    sync_usd: float | None
    batch_usd: float | None
    basis: str
    batch_paid: bool = False  # batch mode through the provider's batch API

    @property
    def paid_usd(self) -> float | None:
        """What the run is expected to pay (see the module docstring)."""
        return self.batch_usd if self.batch_paid else self.sync_usd

    def to_dict(self) -> dict[str, Any]:
        return {"sync_usd": self.sync_usd, "batch_usd": self.batch_usd, "basis": self.basis,
                "paid": "batch" if self.batch_paid else "sync"}


NOTHING_TO_SEND = CostEstimate(0.0, 0.0, "nothing to send")


def job_price(profile: Profile | None, model: str | None, problem: str = "") -> JobPrice:
    """The price of ``model`` (the spec's, else the profile's) behind ``profile``."""
    if profile is None:
        return JobPrice(None, f"unknown: the profile cannot be read ({problem})")
    provider = profile.provider or {}
    kind = "openai" if profile.engine == "http" else str(provider.get("type") or "openai")
    chosen = model or profile.model or provider.get("model")
    if not chosen and kind != "local":
        return JobPrice(None, f"unknown: profile {profile.name!r} names no model to price")
    where = f"profile {profile.name!r}"
    try:
        price = price_for(
            kind,
            str(chosen or ""),
            base_url=provider.get("base_url") if profile.engine != "http" else None,
            overrides=provider.get("prices"),
        )
    except ConfigError as exc:
        return JobPrice(None, f"unknown: {where}: {exc}")
    if price is None:
        return JobPrice(
            None,
            f"unknown: no price listed for model {chosen!r}; set provider.prices "
            f"(input_per_mtok, output_per_mtok) in {where}",
        )
    native = profile.engine == "embedded" and provider.get("batch") == "native"
    return JobPrice(price, price.basis, native_batch=native)


def estimate_cost(job_price: JobPrice, input_tokens: int, output_tokens: int) -> CostEstimate:
    """The cost of ``input_tokens`` in and ``output_tokens`` out, sync and batch."""
    methods = f"input tokens: {PROMPT_TOKEN_METHOD}; output tokens: {OUTPUT_TOKEN_METHOD}"
    price = job_price.price
    if price is None:
        return CostEstimate(None, None, f"{job_price.basis}; {methods}")
    sync = cost_usd(price, input_tokens, output_tokens)
    batch = cost_usd(price, input_tokens, output_tokens, batch=True)
    return CostEstimate(sync, batch, f"{job_price.basis}; {methods}")


def total_cost(costs: dict[str, CostEstimate]) -> dict[str, Any]:
    """The plan's total per price; unknown (None) when any job's cost is, naming those jobs."""
    unknown = sorted(name for name, cost in costs.items() if cost.sync_usd is None)
    if unknown:
        return {"sync_usd": None, "batch_usd": None, "unknown_jobs": unknown}
    return {
        "sync_usd": sum(cost.sync_usd or 0.0 for cost in costs.values()),
        "batch_usd": sum(cost.batch_usd or 0.0 for cost in costs.values()),
        "unknown_jobs": [],
    }
