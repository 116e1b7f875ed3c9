"""The AgentFlow service: the engine behind an HTTP API (``agentflow-jobs serve``)."""

from __future__ import annotations

from agentflow_jobs.server.app import create_app

__all__ = ["create_app"]
