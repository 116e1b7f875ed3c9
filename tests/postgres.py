"""A real PostgreSQL for the tests: a fresh database per test, dropped afterwards.

The server is ``postgresql://postgres@127.0.0.1:5432/test`` (trust auth), or the URL in
``$AGENTFLOW_TEST_PG`` (a ``postgresql://`` URL whose user may create databases); a test
that needs it fails, never skips, when it is unreachable.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

__all__ = ["PG_URL", "fresh_database", "pg_url", "store_location"]

# read at import: the autouse fixture clears AGENTFLOW_* variables before each test
PG_URL = os.environ.get("AGENTFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty database of its own."""
    with fresh_database() as url:
        yield url


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Create a uniquely named database on the test server; drop it on exit."""
    name = f"agentflow_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (set AGENTFLOW_TEST_PG): {exc}")
    try:
        yield urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a batch store lives, once per backend: a file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "s.db"
    url: str = request.getfixturevalue("pg_url")
    return url
