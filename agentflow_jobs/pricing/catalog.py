"""The packaged price table: genai-prices' bundled snapshot, looked up by provider and model.

The snapshot is the ``genai_prices.data`` module inside the pinned wheel; nothing here
fetches (``UpdatePrices`` is never started), so updating prices means bumping the pin.
``genai_prices`` is imported on the first lookup, not at import time: it pulls in an
HTTP client the CLI's start-up should not pay for.

Which provider's entry prices a model, first match wins:

1. the provider whose API the ``base_url`` points at (``https://api.openai.com/v1``);
2. the provider a ``provider/`` prefix names (``openai/gpt-4o-mini``), with the prefix
   stripped; a prefix that names no provider stays part of the model name;
3. the provider named by the profile's provider type, when the table has one
   (``anthropic``);
4. the provider the model's name implies (``gpt-…``/``o1``/``o3``/``o4`` → openai,
   ``claude`` → anthropic, ``gemini`` → google, ``deepseek``, ``grok``, ``mistral``, …).

Providers are matched by exact id, never by genai-prices' fuzzy provider matching
(``my-openai-proxy`` would become openai). An entry whose input and output prices are
both 0 or missing is skipped: those are subscription listings (GitHub Copilot lists
``gpt-4o-mini`` at $0), not what the tokens cost. A batch price counts only where the
entry lists a ``processing: batch`` variant in force at the given time: genai-prices
itself silently returns the sync price for a model without one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from importlib.metadata import version
from typing import TYPE_CHECKING

from agentflow_jobs.pricing.rates import Rates

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider

__all__ = ["CatalogEntry", "catalog_version", "find_listed_price"]

_BATCH = {"processing": "batch"}


@dataclass(frozen=True)
class CatalogEntry:
    """One model's listed prices: sync, and batch where a batch price is listed."""

    provider_id: str
    model_id: str
    sync: Rates
    batch: Rates | None
    tiered: bool


def catalog_version() -> str:
    """The genai-prices release whose snapshot prices are read from."""
    return version("genai-prices")


def find_listed_price(
    model: str, *, provider_type: str, base_url: str | None, at: datetime
) -> CatalogEntry | None:
    """The first non-zero listing of ``model`` along the order in the module docstring."""
    providers = _providers()
    for provider, ref in _candidates(providers, model, provider_type, base_url):
        info = provider.find_model(ref, all_providers=providers)
        if info is not None and (entry := _entry(provider, info, at)) is not None:
            return entry
    return None


@cache
def _providers() -> list[Provider]:
    from genai_prices.data import providers

    return providers


def _candidates(
    providers: list[Provider], model: str, provider_type: str, base_url: str | None
) -> Iterator[tuple[Provider, str]]:
    by_id = {p.id: p for p in providers}
    head, slash, rest = model.partition("/")
    prefixed = by_id.get(head.lower()) if slash and rest else None
    bare = rest if prefixed is not None else model
    if base_url and (served := _provider_at(providers, base_url)) is not None:
        yield served, model
        if bare != model:
            yield served, bare
    if prefixed is not None:
        yield prefixed, bare
    if provider_type in by_id:
        yield by_id[provider_type], bare
    implied = next(
        (p for p in providers if p.model_match and p.model_match.is_match(bare.lower())), None
    )
    if implied is not None:
        yield implied, bare


def _provider_at(providers: list[Provider], base_url: str) -> Provider | None:
    return next((p for p in providers if re.match(p.api_pattern, base_url)), None)


def _entry(provider: Provider, info: ModelInfo, at: datetime) -> CatalogEntry | None:
    listed = info.get_prices(at)
    sync = _rates(listed)
    if sync is None or (sync.input_per_mtok == 0 and sync.output_per_mtok == 0):
        return None
    batch = _rates(info.get_prices(at, _BATCH)) if _lists_batch(provider, info, at) else None
    return CatalogEntry(provider.id, info.id, sync, batch, tiered=_is_tiered(listed))


def _lists_batch(provider: Provider, info: ModelInfo, at: datetime) -> bool:
    # genai-prices applies variants only to a provider's own models, not to a fallback's
    if not any(info is own for own in provider.models):
        return False
    return any(
        v.when == _BATCH and (v.constraint is None or v.constraint.active(at))
        for v in info.price_variants or ()
    )


def _rates(price: ModelPrice) -> Rates | None:
    listed_input = _per_mtok(price.input_mtok)
    listed_output = _per_mtok(price.output_mtok)
    if listed_input is None or listed_output is None:
        return None
    cached = _per_mtok(price.cache_read_mtok)
    return Rates(
        input_per_mtok=listed_input,
        output_per_mtok=listed_output,
        cached_input_per_mtok=listed_input if cached is None else cached,
    )


def _per_mtok(value: object) -> float | None:
    # tiered prices (a higher rate past a context length) are read at their base tier
    base = getattr(value, "base", value)
    return float(base) if isinstance(base, Decimal) else None


def _is_tiered(price: ModelPrice) -> bool:
    return any(
        hasattr(getattr(price, key), "tiers")
        for key in ("input_mtok", "output_mtok", "cache_read_mtok")
    )
