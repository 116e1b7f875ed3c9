"""URLs as people see them: without the credentials a URL may carry.

A base URL may be written ``https://user:password@host/v1``; messages and reprs show
it through ``display_url``, so the password never reaches a log or an error message.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["display_url", "is_postgres_url"]


def display_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, for messages and reprs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rpartition("@")[2] if "@" in url else url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def is_postgres_url(value: object) -> bool:
    """Whether ``value`` is a ``postgresql://`` (or ``postgres://``) URL, not a file path."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))
