"""Read-only views for ``plan`` and ``status``: no lock needed (readers never block)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from agentflow_jobs.runner.apply import select_jobs
from agentflow_jobs.runner.backend import PgLocation, as_location, open_state, state_lock
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.ledger import Ledger
from agentflow_jobs.runner.plan import JobPlan, drift, plan_job
from agentflow_jobs.runner.state import State
from agentflow_jobs.runner.workspace import Workspace
from agentflow_jobs.spec import JobSpec

__all__ = ["job_statuses", "lock_holder", "plan_jobs"]

StateArg = Workspace | str | Path | PgLocation


@contextlib.contextmanager
def _reading(state: StateArg) -> Iterator[State]:
    if isinstance(state, Workspace) and state._state is not None:
        yield state.state
        return
    location = state.location if isinstance(state, Workspace) else as_location(state)
    with open_state(location) as opened:
        yield opened


def lock_holder(state: StateArg) -> dict[str, Any] | None:
    """Who holds the state's lock (pid, host, command, since, run), or None when free."""
    location = state.location if isinstance(state, Workspace) else as_location(state)
    info = state_lock(location, command="status").probe()
    if info is not None and info.get("pid") and not info.get("run"):
        with _reading(state) as opened:
            info["run"] = opened.running(int(info["pid"]), str(info.get("host")))
    return info


def plan_jobs(
    specs: Iterable[JobSpec | Job],
    *,
    state: StateArg,
    mode: str | None = None,
    job_names: Sequence[str] | None = None,
    force: bool = False,
    retry: bool = False,
) -> list[JobPlan]:
    """What ``apply`` would do for each job, in the order it would do it."""
    jobs = select_jobs(specs, job_names)
    with _reading(state) as opened:
        return [plan_job(job, opened, mode=mode, force=force, retry=retry) for job in jobs]


def job_statuses(
    specs: Iterable[JobSpec | Job],
    *,
    state: StateArg,
    job_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Per job: last apply, drift since, items done/failed, batches in flight, tokens, spend."""
    jobs = select_jobs(specs, job_names)
    with _reading(state) as opened:
        return [_status(job, opened) for job in jobs]


def _status(job: Job, state: State) -> dict[str, Any]:
    record = state.job(job.name)
    summary = record.summary if record else {}
    last = record.last_apply if record else None
    return {
        "job": job.name,
        "last_apply": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(last)) if last else None,
        "last_status": record.status if record else None,
        "drift": drift(job, record.spec_hash, record.input_fp, record.output_fp)
        if record
        else ["never applied"],
        "items": int(summary.get("total", 0)),
        "completed": int(summary.get("completed", 0)),
        "failed": int(summary.get("failed", 0)) + int(summary.get("input_errors", 0)),
        "missing": int(summary.get("missing", 0)),
        "batches_in_flight": [
            {
                "batch_id": b.batch_id,
                "status": b.status,
                "items": b.total,
                "completed": b.completed,
                "failed": b.failed,
                # provider.batch: native: the provider's batches (ids, status, counts, expiry)
                "provider_batches": b.provider,
            }
            for b in state.batches(job.name, open_only=True)
        ],
        "output": job.spec.output_display,
        "tokens": Ledger(state).job_counts(job.name)["tokens"],
        # USD its recorded answers cost, over every run; None: some were not priced
        "cost_usd": Ledger(state).job_cost(job.name),
    }
