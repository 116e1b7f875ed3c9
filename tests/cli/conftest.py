"""The runner's workspace fixture (specs, data, .git, the fake provider) for CLI tests."""

from __future__ import annotations

from tests.runner.conftest import ws

__all__ = ["ws"]
