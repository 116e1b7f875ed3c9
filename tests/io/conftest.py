"""The runner's workspace fixture, for the destination tests that apply whole jobs."""

from __future__ import annotations

from tests.runner.conftest import ws

__all__ = ["ws"]
