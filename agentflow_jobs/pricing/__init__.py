"""Prices and token estimates: a bottom-layer package (stdlib, pydantic, genai-prices,
``errors`` and ``wire`` only; no I/O but reading the packaged price snapshot).

- ``catalog``: the packaged price table (genai-prices' bundled snapshot), by provider and model.
- ``rates``: ``Rates``, USD per million tokens (input, cached input, output).
- ``prices``: ``Price``, the profile's ``provider.prices`` overrides, ``price_for``, ``cost_usd``,
  ``price_lookup`` (a provider block's price per model, for the engine).
- ``estimate``: input and output token estimates for ``plan``.

Unknown is never 0: ``price_for`` returns None for a model with no known price.
"""

from __future__ import annotations

from agentflow_jobs.pricing.estimate import (
    OUTPUT_TOKEN_METHOD,
    PROMPT_TOKEN_METHOD,
    estimate_output_tokens,
    estimate_prompt_tokens,
    estimate_text_tokens,
    request_overhead_tokens,
)
from agentflow_jobs.pricing.prices import (
    BATCH_LISTED,
    BATCH_SAME_AS_SYNC,
    LOCAL_SOURCE,
    PRICE_KEYS,
    Price,
    PriceOverrides,
    cost_usd,
    parse_price_overrides,
    price_for,
    price_lookup,
)
from agentflow_jobs.pricing.rates import Rates

__all__ = [
    "BATCH_LISTED",
    "BATCH_SAME_AS_SYNC",
    "LOCAL_SOURCE",
    "OUTPUT_TOKEN_METHOD",
    "PRICE_KEYS",
    "PROMPT_TOKEN_METHOD",
    "Price",
    "PriceOverrides",
    "Rates",
    "cost_usd",
    "estimate_output_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "parse_price_overrides",
    "price_for",
    "price_lookup",
    "request_overhead_tokens",
]
