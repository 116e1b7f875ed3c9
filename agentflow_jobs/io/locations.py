"""Where data lives: a local path, an object-store URL (fsspec) or a database URL.

A spec's ``input.path`` / ``output.path`` is one of three kinds of location:

- a local path (relative to the spec file), the default;
- an fsspec URL: ``file://``, ``memory://``, ``s3://`` (s3fs), ``gs://`` (gcsfs),
  ``az://`` / ``abfs://`` (adlfs); credentials come the way fsspec and the cloud SDKs
  read them (environment, profiles, instance roles), never from the spec;
- a database URL (``postgresql://``, ``sqlite:///``): an output table (see ``io.tables``).

Only this module decides which kind a location is.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "FILE_SCHEMES",
    "SQL_SCHEMES",
    "LocationKind",
    "is_sql_url",
    "location_kind",
    "url_scheme",
]

LocationKind = Literal["local", "url", "sql", "unknown"]
# object stores through fsspec (the package that serves each is an extra)
FILE_SCHEMES = ("file", "memory", "s3", "gs", "gcs", "az", "abfs")
SQL_SCHEMES = ("postgresql", "postgres", "sqlite")
# a scheme is letters first (RFC 3986); "C:\\data" is a Windows drive, not a URL
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def url_scheme(text: str) -> str | None:
    """The scheme of ``text`` written as ``scheme://…`` (lowercase), or None for a path."""
    found = _SCHEME.match(text)
    return found.group(1).lower() if found else None


def is_sql_url(text: str) -> bool:
    """Whether ``text`` is a database URL (``postgresql://``, ``sqlite:///``, ``+driver`` too)."""
    scheme = url_scheme(text)
    return scheme is not None and scheme.split("+", 1)[0] in SQL_SCHEMES


def location_kind(text: str) -> LocationKind:
    """Which kind of location ``text`` is; ``unknown`` for a scheme nobody serves."""
    scheme = url_scheme(text)
    if scheme is None:
        return "local"
    if is_sql_url(text):
        return "sql"
    return "url" if scheme in FILE_SCHEMES else "unknown"
