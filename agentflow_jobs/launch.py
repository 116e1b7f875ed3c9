"""The console script (``agentflow-jobs``): the command line imported with the garbage
collector paused (see ``collector``), which no import of ``agentflow_jobs.cli`` can do
for itself: its own imports run before any of its code."""

from __future__ import annotations

from agentflow_jobs.collector import collector_paused

__all__ = ["entrypoint"]


def entrypoint() -> None:
    """``agentflow_jobs.cli.entrypoint``, imported paused."""
    with collector_paused():
        from agentflow_jobs.cli import entrypoint as run
    run()
