"""build_provider: a profile's provider block becomes a provider, or a clear ConfigError."""

from __future__ import annotations

from typing import Any

import pytest

from agentflow_jobs.errors import ConfigError
from agentflow_jobs.providers import Provider, build_provider
from agentflow_jobs.providers.openai_compat import OpenAICompatProvider
from tests.fakes.handles import FakeProvider
from tests.providers.conftest import chat_once


def test_openai_provider_from_config(fake_provider: FakeProvider) -> None:
    provider = build_provider(
        {"type": "openai", "base_url": fake_provider.base_url, "api_key": "k-123", "model": "m1",
         "headers": {"x-team": "jobs"}, "concurrency": 8, "max_attempts": 5, "timeout": 5,
         "requests_per_minute": 6000, "tokens_per_minute": 100000}
    )
    assert isinstance(provider, Provider) and isinstance(provider, OpenAICompatProvider)
    assert provider.limiter.max_concurrency == 8 and provider.retry.max_attempts == 5
    chat_once(provider)
    assert fake_provider.requests[0]["model"] == "m1"
    assert fake_provider.request_headers[0]["x-team"] == "jobs"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"type": "openai"}, "provider.base_url"),
        ({"base_url": "http://x/v1", "concurrency": "many"}, "provider.concurrency"),
        ({"base_url": "http://x/v1", "concurrency": 0}, "provider.concurrency"),
        ({"base_url": "http://x/v1", "timeout": -1}, "provider.timeout"),
        ({"base_url": "http://x/v1", "headers": ["x"]}, "provider.headers"),
        ({"type": "bedrock"}, "provider.type"),
        ({"type": "anthropic", "max_tokens": 0}, "provider.max_tokens"),
        ({"type": "anthropic", "base_url": "ftp://files.example"}, "provider.base_url"),
        ({"type": "anthropic", "concurrency": "many"}, "provider.concurrency"),
        ({"base_url": "api.openai.com/v1"}, "provider.base_url"),
        ({"base_url": "ftp://files.example/v1"}, "provider.base_url"),
        ({"base_url": "http:///v1"}, "provider.base_url"),
        ({"base_url": "http://127.0.0.1:99999/v1"}, "provider.base_url"),
        ({"base_url": "https://gw:hunter22@gateway.example/v1", "api_key": "sk-x"}, "provider.base_url"),
        ({"base_url": "http://x/v1", "api_key": "sk-a\nb"}, "provider.api_key"),
        ({"base_url": "http://x/v1", "api_key": "sk-abc\u2026"}, "provider.api_key"),
        ({"type": "anthropic", "api_key": "sk-ant\u00a0x"}, "provider.api_key"),
        ({"base_url": "http://x/v1", "headers": {"x-team": "jobs\r\nx-evil: 1"}}, "provider.headers.x-team"),
        ({"base_url": "http://x/v1", "headers": {"x team": "jobs"}}, "provider.headers"),
    ],
)
def test_bad_config_names_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_provider(config)
    assert caught.value.key == key


def test_a_key_a_header_cannot_carry_is_named_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        build_provider({"base_url": "http://x/v1", "api_key": "sk-SECRET\u2026tail"})
    said = str(caught.value)
    assert "SECRET" not in said and "tail" not in said
    assert "non-ASCII character (U+2026) at position 10 of 14" in said


def test_a_key_read_with_its_newline_is_sent_without_it(fake_provider: FakeProvider) -> None:
    provider = build_provider({"base_url": fake_provider.base_url, "api_key": "k-123\n", "model": "m1"})
    chat_once(provider)
    assert fake_provider.request_headers[0]["authorization"] == "Bearer k-123"


def test_an_unknown_type_names_every_known_one() -> None:
    with pytest.raises(ConfigError, match="'openai', 'anthropic' or 'local'"):
        build_provider({"type": "bedrock"})


def test_an_anthropic_provider_defaults_to_anthropics_api() -> None:
    provider = build_provider({"type": "anthropic", "api_key": "sk-ant-SECRET", "model": "claude-haiku-4-5"})
    assert provider.name == "anthropic" and provider.default_model == "claude-haiku-4-5"
    assert "api.anthropic.com" in repr(provider) and "SECRET" not in repr(provider)


def test_a_providers_repr_never_shows_a_password_in_its_url() -> None:
    for kind in ("openai", "anthropic"):
        provider = build_provider({"type": kind, "base_url": "https://gw:hunter22@gateway.example/v1"})
        assert "hunter22" not in repr(provider) and "gateway.example" in repr(provider)


def test_a_base_url_error_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        build_provider({"base_url": "https://gw:hunter22@gateway.example/v1", "api_key": "sk-x"})
    assert "hunter22" not in str(caught.value)
    assert "https://gateway.example/v1" in str(caught.value)


def test_credentials_in_the_url_alone_are_fine() -> None:
    provider = build_provider({"base_url": "https://gw:hunter22@gateway.example/v1"})
    assert "hunter22" not in repr(provider)
