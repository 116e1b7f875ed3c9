"""Sending one job's pending items in one run, through a typed ``AsyncAgentFlow``.

First the job's batches still in flight are re-attached and collected (unless the run
detaches), then what is left is sent in sync mode, or submitted as batches and, unless
detached, collected. Everything that comes back is counted in one ``RunCounts``. A
failure of the whole service ends the sending, never the job: the output is still
written from what the ledger holds.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from agentflow_jobs.errors import AgentFlowError
from agentflow_jobs.runner.batch_mode import cancel_batches, collect_batches, submit_batches
from agentflow_jobs.runner.budget import Budget
from agentflow_jobs.runner.counts import RunCounts
from agentflow_jobs.runner.items import RenderedItem
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.plan import JobPlan
from agentflow_jobs.runner.progress import Progress
from agentflow_jobs.runner.report import JobReport
from agentflow_jobs.runner.state import State
from agentflow_jobs.runner.sync_mode import Selector, run_sync
from agentflow_jobs.sdk.client import AsyncAgentFlow
from agentflow_jobs.sdk.profiles import Profile, config_path

__all__ = ["RunOptions", "cancel_sent", "run_loop", "send_job"]

log = structlog.get_logger()
T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop where it is installed, else on asyncio's own loop.

    A sync job sends one request per item: aiohttp and the loop's sockets are most of
    the CPU it takes, about a fifth less of it on uvloop (bench/README.md, ``e2e``).
    """
    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class RunOptions:
    """How this apply runs its jobs."""

    run_id: str
    stop: threading.Event
    progress: Progress
    mode: str | None = None
    force: bool = False
    retry: bool = False
    detach: bool = False
    max_cost_usd: float | None = None  # the whole run's budget
    budget: Budget = field(default_factory=Budget)  # the limits of the job being sent


def _client(job: Job) -> AsyncAgentFlow:
    return AsyncAgentFlow.from_profile(job.spec.resolved_profile)


def send_job(
    job: Job,
    state: State,
    plan: JobPlan,
    report: JobReport,
    run: RunOptions,
    items: Iterable[RenderedItem] | None = None,
) -> RunCounts:
    """Send the job's items; a failure of the whole service is reported, not raised.

    ``items``: what to send, as apply's count yields or collected them; without them
    (too many to keep, or batches in flight to re-attach first) the input is read again.
    """
    counts = RunCounts()
    try:
        run_loop(_send(job, state, plan, report, run, counts, items))
    except AgentFlowError as exc:
        report.status, report.message, report.exit_code = "error", str(exc), exc.exit_code
        log.error("job stopped", error=str(exc))
    # what reached the provider before a failure of the whole service counts too
    report.sent += counts.sent
    return counts


async def _send(
    job: Job,
    state: State,
    plan: JobPlan,
    report: JobReport,
    run: RunOptions,
    counts: RunCounts,
    items: Iterable[RenderedItem] | None,
) -> None:
    async with _client(job) as client:
        if plan.open_batches and not run.detach:
            await _collect(job, state, client, run, counts)
            report.batches += counts.collected
        if run.stop.is_set():
            return
        # re-attached batches may have freed items the plan did not count: read it all then
        items = None if plan.open_batches else items
        selector = Selector(
            job, state, force=run.force, retry=run.retry, skip=state.keys_in_open_batches, items=items
        )
        if report.mode == "sync":
            _say_if_capped(job, client.profile)
            await run_sync(
                job, state, client, selector=selector, stop=run.stop, counts=counts,
                run_id=run.run_id, on_chunk=_items_cb(run.progress, job), budget=run.budget,
                on_sending=functools.partial(run.progress.sending, job.name),
            )
            return
        # a budget is kept chunk by chunk, which a detached run cannot do: it has the estimate
        budget = run.budget if run.budget.active and not run.detach else None
        await submit_batches(
            job, state, client, selector=selector, run_id=run.run_id, stop=run.stop, counts=counts,
            budget=budget,
        )
        report.batches += counts.submitted
        if run.detach:
            report.status = "submitted"
            return
        await _collect(job, state, client, run, counts)


def _say_if_capped(job: Job, profile: Profile) -> None:
    """Warn when the profile's provider takes fewer requests at once than the job's own
    ``execution.concurrency`` asks for: the job then runs at the provider's pace, and
    nothing else would say why. The default (16) is not the job asking: a self-hosted
    server's 4 is what it should get."""
    execution = job.spec.execution
    slots = profile.request_slots()
    if "concurrency" not in execution.model_fields_set or slots is None or slots >= execution.concurrency:
        return
    where = (f"profile {profile.name!r} ({profile.source})" if profile.source != "built-in"
             else f"a profile named {profile.name!r} in {config_path()}")
    log.warning(
        "the provider takes fewer requests at once than the job's execution.concurrency",
        provider_concurrency=slots, concurrency=execution.concurrency, job=job.name,
        hint=f"set `concurrency` (or `self_hosted: false` for a hosted API at a private "
             f"address) in the provider block of {where}",
    )


async def _collect(
    job: Job, state: State, client: AsyncAgentFlow, run: RunOptions, counts: RunCounts
) -> None:
    await collect_batches(
        job, state, client, stop=run.stop, counts=counts, run_id=run.run_id,
        on_progress=_batch_cb(run.progress, job),
    )


def _items_cb(progress: Progress, job: Job) -> Callable[[int, int], None]:
    def on_chunk(done: int, failed: int) -> None:
        progress.items_done(job.name, done, failed)

    return on_chunk


def _batch_cb(progress: Progress, job: Job) -> Callable[[int, int, int], None]:
    def on_progress(done: int, failed: int, total: int) -> None:
        progress.batch_progress(job.name, done, failed, total)

    return on_progress


def cancel_sent(job: Job, state: State, run_id: str) -> RunCounts:
    """Cancel the job's batches in flight and page what they finished into the ledger."""
    counts = RunCounts()

    async def cancel() -> None:
        async with _client(job) as client:
            await cancel_batches(job, state, client, counts=counts, run_id=run_id)

    run_loop(cancel())
    return counts
