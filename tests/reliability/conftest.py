"""A subprocess-ready project wired to the in-process fake provider (a real socket, so a
CLI subprocess reaches it too)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.handles import FakeProvider
from tests.reliability.harness import Project
from tests.reliability.scenarios import provider_block


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            fake_provider: FakeProvider) -> Iterator[Project]:
    """A workspace that is also the cwd, with its env set for in-process ``main()`` runs."""
    proj = Project(tmp_path / "ws", provider_block(fake_provider))
    monkeypatch.chdir(proj.root)
    for name, value in proj.env_extra.items():
        monkeypatch.setenv(name, value)
    yield proj
    os.chdir(tmp_path)
