"""What a model's tokens cost: the packaged table, the profile's own prices, and the sum.

Resolution of ``price_for(provider_type, model, ...)``:

- ``local`` (the offline in-process model) costs 0, basis ``offline model``.
- Any other type is priced by its model name through the packaged table
  (``catalog.py``): a ``base_url`` may be a proxy to a paid API, so a foreign host
  does not make a model free.
- The profile's ``provider.prices`` win key by key. Setting ``input_per_mtok`` and
  ``output_per_mtok`` prices a model the table lacks (0 for a self-hosted one).
- A model with no listed price and no profile prices is unknown: ``None``, never 0.

Batch: the listed batch price where the table has one; a profile ``batch_discount``
(0.5 = half price) wins over it; profile sync prices without a ``batch_discount`` drop
the listed batch price (it belonged to other sync prices); otherwise the batch price
is the sync price, and the basis says so. Cache writes (Anthropic) are not priced:
our usage does not report them.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from agentflow_jobs.errors import ConfigError
from agentflow_jobs.pricing.catalog import CatalogEntry, catalog_version, find_listed_price
from agentflow_jobs.pricing.rates import Rates

__all__ = [
    "BATCH_LISTED",
    "BATCH_SAME_AS_SYNC",
    "LOCAL_SOURCE",
    "PRICE_KEYS",
    "Price",
    "PriceOverrides",
    "cost_usd",
    "parse_price_overrides",
    "price_for",
    "price_lookup",
]

LOCAL_SOURCE = "offline model"
BATCH_LISTED = "listed batch price"
BATCH_SAME_AS_SYNC = "no batch price listed: sync price"
PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "batch_discount")


class Price(BaseModel):
    """A model's sync and batch rates, and where each came from."""

    model_config = ConfigDict(frozen=True)

    sync: Rates
    batch: Rates
    source: str
    batch_basis: str

    @property
    def basis(self) -> str:
        """One line for ``plan``: the price source, then how the batch price was found."""
        return f"{self.source}; batch: {self.batch_basis}"


class PriceOverrides(BaseModel):
    """A profile's ``provider.prices``; every key optional, all validated."""

    model_config = ConfigDict(frozen=True)

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cached_input_per_mtok: float | None = None
    batch_discount: float | None = None

    @property
    def sets_sync(self) -> bool:
        return any(
            v is not None
            for v in (self.input_per_mtok, self.output_per_mtok, self.cached_input_per_mtok)
        )


def parse_price_overrides(
    raw: Mapping[str, object] | None, *, key: str = "provider.prices"
) -> PriceOverrides:
    """Validate a profile's ``prices`` mapping; a ConfigError names the bad key's path."""
    if raw is None:
        return PriceOverrides()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping of {', '.join(PRICE_KEYS)}", key=key)
    values: dict[str, float] = {}
    for name, value in raw.items():
        values[str(name)] = _checked_value(str(name), value, key)
    return PriceOverrides.model_validate(values)


def _checked_value(name: str, value: object, key: str) -> float:
    where = f"{key}.{name}"
    if name not in PRICE_KEYS:
        near = difflib.get_close_matches(name, PRICE_KEYS, n=1)
        hint = f"; did you mean `{near[0]}`?" if near else f" (known: {', '.join(PRICE_KEYS)})"
        raise ConfigError(f"unknown key `{name}`{hint}", key=where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"expected a number, got {value!r}", key=where)
    if value < 0:
        raise ConfigError(f"must not be negative, got {value!r}", key=where)
    if name == "batch_discount" and value > 1:
        raise ConfigError(f"is a fraction of the sync price (0.5 = half), got {value!r}", key=where)
    return float(value)


def price_for(
    provider_type: str,
    model: str,
    *,
    base_url: str | None = None,
    overrides: PriceOverrides | Mapping[str, object] | None = None,
    at: datetime | None = None,
) -> Price | None:
    """The price of ``model`` behind a profile's provider, or None when unknown.

    ``at`` picks the prices in force at that time (default: now); ``overrides`` is the
    profile's ``provider.prices``, raw or parsed.
    """
    own = overrides if isinstance(overrides, PriceOverrides) else parse_price_overrides(overrides)
    if provider_type == "local":
        zero = Rates(input_per_mtok=0, output_per_mtok=0, cached_input_per_mtok=0)
        base: Price | None = Price(sync=zero, batch=zero, source=LOCAL_SOURCE, batch_basis="free")
    else:
        when = at or datetime.now(tz=UTC)
        entry = find_listed_price(model, provider_type=provider_type, base_url=base_url, at=when)
        base = _listed(entry) if entry is not None else None
    if own == PriceOverrides():
        return base
    return _overridden(base, own, model)


def price_lookup(provider: Mapping[str, object]) -> Callable[[str | None], Price | None]:
    """The price of each model behind a profile's ``provider:`` block, looked up once per model.

    A model the profile's prices cannot price (an unlisted model with only some
    prices set) is unknown here; ``plan`` names the missing key.
    """
    kind = str(provider.get("type") or "openai")
    base_url = provider.get("base_url")
    overrides = parse_price_overrides(_mapping(provider.get("prices")))

    @functools.lru_cache(maxsize=64)
    def lookup(model: str | None) -> Price | None:
        if not model and kind != "local":
            return None
        try:
            url = base_url if isinstance(base_url, str) else None
            return price_for(kind, model or "", base_url=url, overrides=overrides)
        except ConfigError:
            return None

    return lookup


def _mapping(raw: object) -> Mapping[str, object] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping of {', '.join(PRICE_KEYS)}", key="provider.prices")
    return raw


def _listed(entry: CatalogEntry) -> Price:
    sync = entry.sync
    source = f"genai-prices {catalog_version()} snapshot: {entry.provider_id}/{entry.model_id}"
    if entry.tiered:
        source += " (base tier)"
    if entry.batch is None:
        return Price(sync=sync, batch=sync, source=source, batch_basis=BATCH_SAME_AS_SYNC)
    return Price(sync=sync, batch=entry.batch, source=source, batch_basis=BATCH_LISTED)


def _overridden(base: Price | None, own: PriceOverrides, model: str) -> Price:
    sync = _overridden_sync(base, own, model)
    if base is None:
        source = "profile prices"
    else:
        source = f"profile prices over {base.source}" if own.sets_sync else base.source
    if own.batch_discount is not None:
        basis = f"profile batch_discount {own.batch_discount:g}"
        return Price(
            sync=sync, batch=sync.discounted(own.batch_discount), source=source, batch_basis=basis
        )
    if base is not None and not own.sets_sync:
        return base
    return Price(sync=sync, batch=sync, source=source, batch_basis=BATCH_SAME_AS_SYNC)


def _overridden_sync(base: Price | None, own: PriceOverrides, model: str) -> Rates:
    listed = base.sync if base is not None else _unlisted(own, model)
    # a profile's own input price is also its cached price unless it says otherwise
    cached = _pick(own.input_per_mtok, listed.cached_input_per_mtok)
    return Rates(
        input_per_mtok=_pick(own.input_per_mtok, listed.input_per_mtok),
        output_per_mtok=_pick(own.output_per_mtok, listed.output_per_mtok),
        cached_input_per_mtok=_pick(own.cached_input_per_mtok, cached),
    )


def _unlisted(own: PriceOverrides, model: str) -> Rates:
    """The profile's rates for a model the table lacks: both sync prices are required."""
    if own.input_per_mtok is None or own.output_per_mtok is None:
        missing = "input_per_mtok" if own.input_per_mtok is None else "output_per_mtok"
        raise ConfigError(
            f"needed: no price is listed for model {model!r}", key=f"provider.prices.{missing}"
        )
    return Rates(
        input_per_mtok=own.input_per_mtok,
        output_per_mtok=own.output_per_mtok,
        cached_input_per_mtok=own.input_per_mtok,
    )


def _pick(own: float | None, listed: float) -> float:
    return listed if own is None else own


def cost_usd(
    price: Price,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
    batch: bool = False,
) -> float:
    """USD for one answer's usage; ``cached_tokens`` are the part of ``prompt_tokens`` read from cache."""
    if min(prompt_tokens, completion_tokens, cached_tokens) < 0 or cached_tokens > prompt_tokens:
        raise ValueError(
            f"token counts must be >= 0 with cached <= prompt, got prompt={prompt_tokens} "
            f"completion={completion_tokens} cached={cached_tokens}"
        )
    rates = price.batch if batch else price.sync
    micro_usd = (
        (prompt_tokens - cached_tokens) * rates.input_per_mtok
        + cached_tokens * rates.cached_input_per_mtok
        + completion_tokens * rates.output_per_mtok
    )
    return micro_usd / 1_000_000
