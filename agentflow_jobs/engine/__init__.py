"""engine: executes CompletionRequests over a provider (``Executor``); batches on top."""

from __future__ import annotations

from agentflow_jobs.engine.executor import Executor

__all__ = ["Executor"]
