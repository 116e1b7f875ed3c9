"""The runner's crash points: ``agentflow_jobs.crash`` (bottom layer, the engine has its own)."""

from __future__ import annotations

from agentflow_jobs.crash import crash_point

__all__ = ["crash_point"]
