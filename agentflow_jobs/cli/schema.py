"""`agentflow-jobs schema` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="schema")
def command() -> None:
    """Not built yet."""
    raise UsageError("`schema` is not built yet")
