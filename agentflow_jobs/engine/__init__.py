"""engine: executes CompletionRequests over a provider (``Executor``); batches on top, on
the engine's own workers or through the provider's batch API (``native``)."""

from __future__ import annotations

from agentflow_jobs.engine.executor import Executor

__all__ = ["Executor"]
