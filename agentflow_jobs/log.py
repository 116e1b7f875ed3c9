"""structlog configuration and secret redaction.

Logs go to stderr: a readable console renderer on a TTY, JSON lines otherwise. ``job``,
``run_id`` and ``batch_id`` are bound once through contextvars. One processor redacts
secrets: values of secret-named keys, and every registered secret value wherever it
appears in a string of the event (an API key pasted into an error message included).
``redact`` applies the same replacement to any value outside a log event: providers
pass it the text of their error messages and their own key (registered or not).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, overload

import structlog

__all__ = [
    "REDACTED",
    "configure_logging",
    "ensure_logging",
    "is_secret_key",
    "redact",
    "redact_event",
    "register_secret",
    "registered_secrets",
]

REDACTED = "***"
# names whose values are secrets wherever they appear: api_key, Authorization, x-api-token, ...
_SECRET_KEY = re.compile(r"api[_-]?key|authorization|token|secret|password|passwd|credential", re.I)
# environment variables whose values are always secrets
_SECRET_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AGENTFLOW_API_KEY")
# shorter values would redact ordinary words; a real key is never this short
_MIN_SECRET_LEN = 4

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None


def is_secret_key(name: object) -> bool:
    """True for keys (or variable names) that hold secrets: api_key, token, ..."""
    return isinstance(name, str) and _SECRET_KEY.search(name) is not None


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every log line from now on."""
    global _secrets, _pattern
    if not value or len(value) < _MIN_SECRET_LEN or value in _secrets:
        return
    with _lock:
        _secrets = _secrets | {value}
        _pattern = _compile(_secrets)


@functools.lru_cache(maxsize=16)
def _compile(secrets: frozenset[str]) -> re.Pattern[str]:
    # longest first, so a secret containing another is replaced whole
    ordered = sorted(secrets, key=len, reverse=True)
    return re.compile("|".join(re.escape(s) for s in ordered))


def registered_secrets() -> frozenset[str]:
    return _secrets


def _register_env_secrets(environ: Mapping[str, str]) -> None:
    for name in _SECRET_ENV:
        register_secret(environ.get(name))


@overload
def redact(value: str, secret: str | None = None) -> str: ...


@overload
def redact(value: Any, secret: str | None = None) -> Any: ...


def redact(value: Any, secret: str | None = None) -> Any:
    """``value`` with every registered secret, and ``secret`` when given, replaced by
    ``***`` in every string, recursively (the values of secret-named keys too)."""
    pattern = _pattern
    if secret and len(secret) >= _MIN_SECRET_LEN and secret not in _secrets:
        pattern = _compile(_secrets | {secret})
    if pattern is None:
        return value
    return _redact(value, pattern)


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value) if pattern.search(value) else value
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_key(k) else _redact(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, pattern) for v in value]
    if isinstance(value, BaseException):
        return _redact(str(value), pattern)
    return value


def _mask_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_key(k) else _mask_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_keys(v) for v in value]
    return value


def redact_event(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: secret-named keys → ``***``; registered values → ``***``."""
    pattern = _pattern
    for key, value in list(event_dict.items()):
        if is_secret_key(key) and value is not None:
            event_dict[key] = REDACTED
        elif pattern is not None:
            event_dict[key] = _redact(value, pattern)
        elif isinstance(value, Mapping | list | tuple):
            event_dict[key] = _mask_keys(value)
    return event_dict


def _renderer(fmt: str, stream: Any) -> Any:
    isatty = getattr(stream, "isatty", None)
    tty = bool(callable(isatty) and isatty())
    if fmt == "console" or (fmt == "auto" and tty):
        # tracebacks reach it as text already (format_exc_info, before redaction): never
        # the rich default's frames with their local variables (headers among them)
        return structlog.dev.ConsoleRenderer(colors=tty)
    return structlog.processors.JSONRenderer()


def ensure_logging() -> None:
    """For library entry points (the SDK): when the application has not configured
    structlog, ours applies — stderr, warnings and up, secrets redacted, tracebacks
    without local variables — instead of structlog's default, which prints every level
    to stdout with rich tracebacks that show each frame's locals (headers among them).
    An application that configured structlog keeps its own setup."""
    if not structlog.is_configured():
        configure_logging(fmt="auto", level="warning")


def configure_logging(*, fmt: str = "auto", level: str = "info") -> None:
    """Send structlog output to stderr; console on a TTY, JSON lines otherwise."""
    _register_env_secrets(os.environ)
    processors: Iterable[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        # last before rendering, so nothing added later escapes redaction
        redact_event,
        _renderer(fmt, sys.stderr),
    ]
    structlog.configure(
        processors=list(processors),
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        # resolve sys.stderr per logger, not once: pytest's capsys swaps it per test
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)
