"""Apply: make each job's output match its spec, sending only what is not answered yet.

Per job: plan (fingerprints, then a ledger count), re-attach to batches already in
flight, send what is left in sync or batch mode, write the output from the ledger,
then remember the fingerprints. Interrupted (``stop`` set) or not, the output is
written from whatever the ledger holds, so results that arrived are never lost; only a
run that got no answer from the provider (or ended unreachable, exit 4) leaves the
previous output file as it was.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agentflow_jobs.errors import AgentFlowError, UsageError
from agentflow_jobs.runner.batch_mode import (
    BatchCounts,
    cancel_batches,
    collect_batches,
    submit_batches,
)
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.output import OutputSummary, write_output
from agentflow_jobs.runner.plan import (
    JobPlan,
    file_fingerprint,
    input_fingerprint,
    job_fingerprint,
    order_jobs,
    plan_job,
    upstream_of,
)
from agentflow_jobs.runner.progress import NullProgress, Progress
from agentflow_jobs.runner.state import JobRecord, State
from agentflow_jobs.runner.sync_mode import Selector, SyncCounts, run_sync
from agentflow_jobs.runner.workspace import Workspace, open_workspace

__all__ = ["ApplyReport", "JobReport", "apply_jobs", "cancel_job", "select_jobs"]

log = structlog.get_logger()


@dataclass
class JobReport:
    """The outcome of one job in one apply."""

    name: str
    status: str  # up_to_date | applied | failed | incomplete | submitted | error | skipped
    mode: str = "sync"
    total: int = 0
    cached: int = 0
    sent: int = 0  # sync: items that reached the provider; batch: items submitted
    requests: int = 0  # provider requests for the results received, re-asks and retries included
    completed: int = 0
    failed: int = 0
    input_errors: int = 0
    missing: int = 0
    tokens: int = 0
    batches: int = 0
    output: str = ""
    errors: str | None = None
    message: str | None = None
    seconds: float = 0.0
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ApplyReport:
    """The outcome of one apply over several jobs."""

    run_id: str
    jobs: list[JobReport] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return max((job.exit_code for job in self.jobs), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "jobs": [job.to_dict() for job in self.jobs],
        }


@dataclass
class _Received:
    """What came back from the provider in this run (answers are completed rows or
    failures the provider gave; retryable failures are those nobody was charged for)."""

    answered: int = 0
    retryable: int = 0

    requests: int = 0

    def add(self, counts: SyncCounts | BatchCounts) -> None:
        self.answered += counts.completed + counts.failed - counts.retryable
        self.retryable += counts.retryable
        self.requests += counts.requests

    @property
    def provider_down(self) -> bool:
        """Every request of this run failed without an answer."""
        return self.answered == 0 and self.retryable > 0


def select_jobs(specs: Iterable[Any], names: Sequence[str] | None) -> list[Job]:
    """Jobs from specs, in dependency order; ``names`` (if given) must all exist."""
    jobs = [spec if isinstance(spec, Job) else Job.from_spec(spec) for spec in specs]
    if names:
        known = {job.name for job in jobs}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise UsageError(
                f"no job named {', '.join(unknown)} (jobs: {', '.join(sorted(known))})"
            )
        jobs = [job for job in jobs if job.name in names]
    return order_jobs(jobs)


def _client(job: Job) -> Any:
    from agentflow_jobs.sdk.client import AsyncAgentFlow

    return AsyncAgentFlow.from_profile(job.profile)


async def _execute(
    job: Job,
    state: State,
    plan: JobPlan,
    report: JobReport,
    *,
    run_id: str,
    force: bool,
    retry: bool,
    detach: bool,
    stop: threading.Event,
    progress: Progress,
    received: _Received,
) -> None:
    async with _client(job) as client:
        if plan.open_batches and not detach:
            counts = await collect_batches(
                job, state, client, stop=stop, run_id=run_id, on_progress=_batch_cb(progress, job)
            )
            report.batches += counts.collected
            received.add(counts)
        if stop.is_set():
            return
        skip = state.keys_in_open_batches
        # re-attached batches may have freed items the plan did not count: read it all then
        items = None if plan.open_batches else plan.pending_items
        selector = Selector(job, state, force=force, retry=retry, skip=skip, items=items)
        if report.mode == "sync":

            def on_chunk(done: int, failed: int) -> None:
                progress.items_done(job.name, done, failed)

            sync = await run_sync(
                job, state, client, selector=selector, stop=stop, run_id=run_id, on_chunk=on_chunk
            )
            report.sent += sync.sent
            received.add(sync)
            return
        sub = await submit_batches(job, state, client, selector=selector, run_id=run_id, stop=stop)
        report.sent += sub.sent
        report.batches += sub.submitted
        if detach:
            report.status = "submitted"
            return
        received.add(
            await collect_batches(
                job, state, client, stop=stop, run_id=run_id, on_progress=_batch_cb(progress, job)
            )
        )


def _batch_cb(progress: Progress, job: Job) -> Any:
    def on_progress(done: int, failed: int, total: int) -> None:
        progress.batch_progress(job.name, done, failed, total)

    return on_progress


def _finish(
    job: Job,
    state: State,
    report: JobReport,
    summary: OutputSummary,
    input_fp: str | None,
    run_id: str,
    received: _Received | None = None,
) -> None:
    report.total, report.completed, report.failed = summary.total, summary.completed, summary.failed
    report.input_errors, report.missing, report.tokens = (
        summary.input_errors,
        summary.missing,
        summary.tokens,
    )
    report.errors = str(job.errors_path) if summary.failed or summary.input_errors else None
    report.requests = received.requests if received is not None else 0
    if report.status in ("submitted", "error", "cancelled"):
        pass  # the caller already decided; the state records exactly what it reports
    elif summary.missing:
        report.status = "incomplete"
    elif received is not None and received.provider_down:
        report.status, report.exit_code = "error", 4
        report.message = (
            "the provider failed every request (see the errors file); nothing was paid "
            "for and a later apply sends these items again"
        )
    elif summary.failure_rate > job.max_failure_rate:
        report.status = "failed"
        report.exit_code = 1
        report.message = (
            f"failure rate {summary.failure_rate:.1%} is above max_failure_rate "
            f"{job.max_failure_rate:.1%}; good rows were written; "
            f"`agentflow-jobs retry {job.name}` re-sends the failed items"
        )
    else:
        report.status = "applied"
    record = JobRecord(
        name=job.name,
        spec_hash=job_fingerprint(job),
        input_fp=input_fp,
        output_fp=file_fingerprint(job.output_path),
        output_path=str(job.output_path),
        last_apply=time.time(),
        last_run=run_id,
        status=report.status,
        summary={**asdict(summary), "mode": report.mode},
    )
    state.record_job(record)


def _unchanged(job: Job, state: State, plan: JobPlan, report: JobReport) -> None:
    record = state.job(job.name)
    report.tokens = int(record.summary.get("tokens", 0)) if record else 0
    report.completed, report.failed = plan.cached, plan.failed
    report.input_errors = plan.input_errors
    report.exit_code = 1 if plan.status == "failed" else 0
    report.message = "unchanged since the last apply" + (
        "; `retry` re-sends its failed items" if plan.status == "failed" else ""
    )


def _apply_one(
    job: Job,
    state: State,
    *,
    run_id: str,
    mode: str | None,
    force: bool,
    retry: bool,
    detach: bool,
    stop: threading.Event,
    progress: Progress,
) -> JobReport:
    """Plan, send, write one job; a job that cannot run is reported, never raised."""
    started = time.monotonic()
    structlog.contextvars.bind_contextvars(job=job.name)
    report = JobReport(name=job.name, status="new", output=str(job.output_path))
    try:
        input_fp = input_fingerprint(job.input_path)
        plan = plan_job(job, state, mode=mode, force=force, retry=retry)
        report.status, report.mode, report.total, report.cached = (
            plan.status,
            plan.mode,
            plan.total,
            plan.cached,
        )
        if plan.status in ("up_to_date", "failed"):
            _unchanged(job, state, plan, report)
        else:
            progress.job_started(job.name, plan.mode, plan.to_send, plan.total)
            log.info("applying job", mode=plan.mode, to_send=plan.to_send, cached=plan.cached)
            received = _Received()
            if plan.to_send or plan.open_batches:
                _run_execute(
                    job,
                    state,
                    plan,
                    report,
                    run_id=run_id,
                    force=force,
                    retry=retry,
                    detach=detach,
                    stop=stop,
                    progress=progress,
                    received=received,
                )
            keep = _keep_output(report, received)
            existed = job.output_path.is_file()
            summary = write_output(job, state, keep_output=keep)
            _finish(job, state, report, summary, input_fp, run_id, received)
            if keep:
                kept = (f"the previous output {job.output_path.name} was left as it was"
                        if existed else f"no output was written to {job.output_path.name}")
                report.message = (report.message or "nothing was answered") + (
                    f"; {kept} (the next apply that gets answers writes it)"
                )
    except AgentFlowError as exc:
        report.status, report.message, report.exit_code = "error", str(exc), exc.exit_code
        log.error("job failed to run", error=str(exc))
    report.seconds = time.monotonic() - started
    progress.job_finished(report)
    return report


def _keep_output(report: JobReport, received: _Received) -> bool:
    """Whether this run must leave the output as it was (write no new file).

    A run that got no answer at all and ended with the provider unreachable (exit 4),
    every request unanswered, or the run failing as a whole (a broken provider setting,
    exit 2) has nothing to put in place of the previous rows, which may well be another
    model's: emptying the file would throw good rows away for a failure the next apply
    retries anyway. Their items stay in the errors file and the ledger. A run that got
    answers writes them, however it ended.
    """
    if received.answered:
        return False
    return report.exit_code == 4 or received.provider_down or report.status == "error"


def _run_execute(job: Job, state: State, plan: JobPlan, report: JobReport, **kwargs: Any) -> None:
    """Send the job's items; a failure of the whole service still lets the output be written."""
    try:
        asyncio.run(_execute(job, state, plan, report, **kwargs))
    except AgentFlowError as exc:
        report.status, report.message, report.exit_code = "error", str(exc), exc.exit_code
        log.error("job stopped", error=str(exc))


def _blocked(job: Job, jobs: Sequence[Job], finished: dict[str, JobReport]) -> JobReport | None:
    """A skipped report when the job producing this job's input did not finish."""
    upstream = upstream_of(job, jobs)
    done = finished.get(upstream.name) if upstream is not None else None
    if upstream is None or done is None or done.status in ("applied", "up_to_date"):
        return None
    return JobReport(
        name=job.name,
        status="skipped",
        output=str(job.output_path),
        message=f"upstream job {upstream.name} did not finish ({done.status})",
    )


def apply_jobs(
    specs: Iterable[Any],
    *,
    state: Workspace | str | Path,
    mode: str | None = None,
    force: bool = False,
    detach: bool = False,
    job_names: Sequence[str] | None = None,
    retry: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    lock_timeout: float = 0.0,
) -> ApplyReport:
    """Apply ``specs`` against the state (a held Workspace, or a path to lock for this call)."""
    jobs = select_jobs(specs, job_names)
    stop = stop or threading.Event()
    progress = progress or NullProgress()
    run_id = uuid.uuid4().hex[:12]
    report = ApplyReport(run_id=run_id)
    with open_workspace(state, lock_timeout=lock_timeout, command="apply") as ws:
        structlog.contextvars.bind_contextvars(run_id=run_id)
        ws.state.start_run(run_id, "retry" if retry else "apply")
        finished: dict[str, JobReport] = {}
        try:
            for job in jobs:
                if stop.is_set():
                    report.interrupted = True
                    break
                blocked = _blocked(job, jobs, finished)
                if blocked is not None:
                    report.jobs.append(blocked)
                    finished[job.name] = blocked
                    continue
                job_report = _apply_one(
                    job,
                    ws.state,
                    run_id=run_id,
                    mode=mode,
                    force=force,
                    retry=retry,
                    detach=detach,
                    stop=stop,
                    progress=progress,
                )
                report.jobs.append(job_report)
                finished[job.name] = job_report
            report.interrupted = report.interrupted or stop.is_set()
        finally:
            ws.state.finish_run(run_id, "interrupted" if report.interrupted else "done")
            structlog.contextvars.unbind_contextvars("run_id", "job")
    return report


def _cancel(job: Job, state: State, run_id: str) -> JobReport:
    report = JobReport(name=job.name, status="cancelled", mode="batch", output=str(job.output_path))
    open_batches = state.batches(job.name, open_only=True)
    if open_batches:

        async def run() -> None:
            async with _client(job) as client:
                counts = await cancel_batches(job, state, client, run_id=run_id)
                report.batches = counts.collected

        asyncio.run(run())
    summary = write_output(job, state)
    _finish(job, state, report, summary, input_fingerprint(job.input_path), run_id)
    report.message = f"{len(open_batches)} batch(es) cancelled"
    return report


def cancel_job(
    specs: Iterable[Any], name: str, *, state: Workspace | str | Path, lock_timeout: float = 0.0
) -> JobReport:
    """Cancel the job's in-flight batches, record what they finished, rewrite its output."""
    (job,) = select_jobs(specs, [name])
    run_id = uuid.uuid4().hex[:12]
    with open_workspace(state, lock_timeout=lock_timeout, command="cancel") as ws:
        ws.state.start_run(run_id, "cancel")
        try:
            report = _cancel(job, ws.state, run_id)
        finally:
            ws.state.finish_run(run_id, "done")
    return report
