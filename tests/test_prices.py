"""Prices from the packaged table, profile prices, cost to the cent, token estimates."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from agentflow_jobs.errors import ConfigError
from agentflow_jobs.pricing import (
    BATCH_LISTED,
    BATCH_SAME_AS_SYNC,
    PROMPT_TOKEN_METHOD,
    cost_usd,
    estimate_output_tokens,
    estimate_prompt_tokens,
    parse_price_overrides,
    price_for,
)
from agentflow_jobs.wire import EnrichField


def _price(provider_type: str, model: str, **kwargs: Any) -> Any:
    price = price_for(provider_type, model, **kwargs)
    assert price is not None, f"{model} should be priced"
    return price


def test_gpt_4o_mini_sync_and_batch_to_the_cent() -> None:
    price = _price("openai", "gpt-4o-mini")
    # 1.6M uncached at $0.15 + 0.4M cached at $0.075 + 0.4M out at $0.60
    assert cost_usd(price, 2_000_000, 400_000, cached_tokens=400_000) == pytest.approx(
        0.27 + 0.24, abs=1e-9
    )
    # batch: 1.6M at $0.075 + 0.4M cached at $0.075 + 0.4M out at $0.30
    assert cost_usd(price, 2_000_000, 400_000, cached_tokens=400_000, batch=True) == pytest.approx(
        0.27, abs=1e-9
    )
    assert price.batch_basis == BATCH_LISTED
    assert price.source == "genai-prices 0.2.3 snapshot: openai/gpt-4o-mini"


def test_batch_is_half_of_sync_for_gpt_4o_mini() -> None:
    price = _price("openai", "gpt-4o-mini")
    sync = cost_usd(price, 10_000, 2_000)
    assert sync > 0
    assert cost_usd(price, 10_000, 2_000, batch=True) == pytest.approx(sync / 2)


def test_claude_haiku_4_5_sync_and_batch_to_the_cent() -> None:
    price = _price("anthropic", "claude-haiku-4-5")
    # 1.5M uncached at $1 + 0.5M cached at $0.10 + 0.4M out at $5
    assert cost_usd(price, 2_000_000, 400_000, cached_tokens=500_000) == pytest.approx(
        3.55, abs=1e-9
    )
    # batch: 1.5M at $0.50 + 0.5M cached at $0.05 + 0.4M out at $2.50
    assert cost_usd(price, 2_000_000, 400_000, cached_tokens=500_000, batch=True) == pytest.approx(
        1.775, abs=1e-9
    )


def test_cost_agrees_with_genai_prices_own_calculation() -> None:
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=2_000_000, cache_read_tokens=500_000, output_tokens=400_000)
    for batch in (False, True):
        theirs = calc_price(
            usage,
            "claude-haiku-4-5",
            provider_id="anthropic",
            price_context={"processing": "batch"} if batch else None,
        )
        ours = cost_usd(
            _price("anthropic", "claude-haiku-4-5"),
            2_000_000,
            400_000,
            cached_tokens=500_000,
            batch=batch,
        )
        assert ours == pytest.approx(float(theirs.total_price), abs=1e-9)


def test_a_model_without_a_batch_price_says_so() -> None:
    price = _price("anthropic", "claude-3-5-haiku-latest")
    assert price.batch == price.sync
    assert price.batch_basis == BATCH_SAME_AS_SYNC
    assert "no batch price listed: sync price" in price.basis


def test_an_unknown_model_is_unknown_not_free() -> None:
    assert price_for("openai", "no-such-model-7b") is None
    assert price_for("anthropic", "claude-no-such-model") is None
    assert price_for("openai", "no-such-model-7b", base_url="http://127.0.0.1:8000/v1") is None


def test_the_offline_model_costs_nothing() -> None:
    price = _price("local", "gemma-3-270m")
    assert cost_usd(price, 5_000, 1_000) == 0
    assert cost_usd(price, 5_000, 1_000, batch=True) == 0
    assert price.source == "offline model"


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "gpt-4o-mini-2024-07-18", "GPT-4o-mini"])
def test_prefixed_and_dated_names_resolve(model: str) -> None:
    assert _price("openai", model).sync == _price("openai", "gpt-4o-mini").sync


def test_a_proxy_base_url_is_priced_by_the_model_name() -> None:
    price = _price("openai", "claude-haiku-4-5", base_url="http://litellm.internal:4000/v1")
    assert price.sync.input_per_mtok == 1.0
    assert price.source.endswith("anthropic/claude-haiku-4-5")


def test_a_known_provider_host_prices_its_own_models() -> None:
    price = _price("openai", "llama-3.1-8b-instant", base_url="https://api.groq.com/openai/v1")
    assert price.source.endswith("groq/llama-3.1-8b-instant")
    assert price.sync.input_per_mtok > 0


def test_a_zero_subscription_listing_never_prices_a_model() -> None:
    from genai_prices.data import providers

    copilot = next(p for p in providers if p.id == "github-copilot")
    listed = copilot.find_model("gpt-4o-mini")
    assert listed is not None and not listed.get_prices(datetime.now(tz=UTC)).input_mtok
    for kwargs in ({}, {"base_url": "https://api.githubcopilot.com"}):
        price = _price("openai", "gpt-4o-mini", **kwargs)
        assert price.sync.input_per_mtok == 0.15
    assert _price("openai", "github-copilot/gpt-4o-mini").sync.output_per_mtok == 0.6


def test_profile_prices_win_and_price_a_self_hosted_model() -> None:
    zero = {"input_per_mtok": 0, "output_per_mtok": 0}
    price = _price("openai", "my-llama", base_url="http://gpu-box:8000/v1", overrides=zero)
    assert cost_usd(price, 1_000_000, 1_000_000) == 0
    assert price.source == "profile prices"
    own = _price(
        "openai",
        "gpt-4o-mini",
        overrides={"input_per_mtok": 1, "output_per_mtok": 2, "batch_discount": 0.25},
    )
    assert cost_usd(own, 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert cost_usd(own, 1_000_000, 1_000_000, batch=True) == pytest.approx(2.25)
    assert own.batch_basis == "profile batch_discount 0.25"


def test_profile_sync_prices_without_a_discount_drop_the_listed_batch_price() -> None:
    price = _price("openai", "gpt-4o-mini", overrides={"output_per_mtok": 1.0})
    assert price.sync.input_per_mtok == 0.15 and price.sync.output_per_mtok == 1.0
    assert price.batch == price.sync
    assert price.source.startswith("profile prices over genai-prices")


def test_a_batch_discount_alone_applies_to_the_listed_sync_price() -> None:
    price = _price("anthropic", "claude-3-5-haiku-latest", overrides={"batch_discount": 0.5})
    assert cost_usd(price, 1_000_000, 0, batch=True) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"input_per_mtok": -1}, "provider.prices.input_per_mtok"),
        ({"output_per_mtok": "cheap"}, "provider.prices.output_per_mtok"),
        ({"batch_discount": 1.5}, "provider.prices.batch_discount"),
        ({"cached_input_per_mtok": True}, "provider.prices.cached_input_per_mtok"),
        ({"input_per_mtoks": 1}, "provider.prices.input_per_mtoks"),
    ],
)
def test_bad_profile_prices_are_config_errors_naming_the_key(
    raw: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_price_overrides(raw)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")


def test_an_unknown_key_suggests_the_near_miss() -> None:
    with pytest.raises(ConfigError, match="did you mean `input_per_mtok`"):
        price_for("openai", "gpt-4o-mini", overrides={"input_per_mtoks": 1})


def test_an_unlisted_model_needs_both_sync_prices() -> None:
    with pytest.raises(ConfigError) as caught:
        price_for("openai", "my-llama", overrides={"input_per_mtok": 0})
    assert caught.value.key == "provider.prices.output_per_mtok"


def test_prices_need_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert cost_usd(_price("openai", "gpt-4o-mini"), 1_000_000, 0) == pytest.approx(0.15)


def test_a_fresh_process_prices_offline_and_imports_only_the_bottom_layer() -> None:
    script = """
import socket, sys
def refuse(*a, **k): raise OSError("network used")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
import agentflow_jobs.pricing as p
assert "genai_prices" not in sys.modules
ours = {m for m in sys.modules if m.startswith("agentflow_jobs.") and not m.startswith("agentflow_jobs.pricing")}
assert ours <= {"agentflow_jobs.errors", "agentflow_jobs.wire"}, ours
price = p.price_for("openai", "gpt-4o-mini")
print(p.cost_usd(price, 1_000_000, 1_000_000, batch=True))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(0.375)


def test_cost_refuses_impossible_usage() -> None:
    with pytest.raises(ValueError, match="cached <= prompt"):
        cost_usd(_price("openai", "gpt-4o-mini"), 10, 0, cached_tokens=11)


def test_prompt_estimate_counts_bytes_and_messages() -> None:
    messages = [
        {"role": "system", "content": "x" * 40},  # 10 tokens
        {"role": "user", "content": "y" * 41},  # 11 tokens
    ]
    assert estimate_prompt_tokens(messages) == 10 + 11 + 2 * 4 + 3
    assert estimate_prompt_tokens([]) == 0
    assert "4 UTF-8 bytes per token" in PROMPT_TOKEN_METHOD


def test_prompt_estimate_does_not_undercount_cjk_text() -> None:
    # 12 characters, 36 UTF-8 bytes
    assert (
        estimate_prompt_tokens([{"role": "user", "content": "日本語のテキストです。はい"[:12]}])
        == 9 + 4 + 3
    )


def test_label_output_is_the_label_json_with_the_longest_category() -> None:
    short = estimate_output_tokens("label", categories=["a", "b"])
    long = estimate_output_tokens("label", categories=["a", "a very long category name indeed"])
    # '{"label": "a", "confidence": 0.95}' is 34 bytes
    assert short == 9
    assert long == short + 8


def test_enrich_and_extract_grow_with_fields_and_properties() -> None:
    one = estimate_output_tokens("enrich", fields=[EnrichField(name="city")])
    two = estimate_output_tokens(
        "enrich", fields=[EnrichField(name="city"), EnrichField(name="age", type="integer")]
    )
    assert 0 < one < two
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    assert estimate_output_tokens("extract", output_schema=schema) > estimate_output_tokens(
        "extract", output_schema={"type": "object", "properties": {"name": {"type": "string"}}}
    )


def test_output_estimate_never_exceeds_max_tokens() -> None:
    assert estimate_output_tokens("summarize", max_tokens=120) == 120
    assert estimate_output_tokens("run") == 512
    fields = [EnrichField(name=f"field_{i}") for i in range(50)]
    assert estimate_output_tokens("enrich", fields=fields, max_tokens=100) == 100


def test_the_package_exports_one_sorted_list() -> None:
    import agentflow_jobs.pricing as pricing

    assert pricing.__all__ == sorted(pricing.__all__)
    assert all(hasattr(pricing, name) for name in pricing.__all__)
