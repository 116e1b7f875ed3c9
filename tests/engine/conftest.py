"""The batch store's two backends: each store test runs on a SQLite file and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a store lives: a file, or a fresh PostgreSQL database (``tests/postgres.py``)."""
    if request.param == "sqlite":
        return tmp_path / "s.db"
    url: str = request.getfixturevalue("pg_url")
    return url
