"""Apply: make each job's output match its spec, sending only what is not answered yet.

Per job: plan (fingerprints, then a ledger count), re-attach to batches already in
flight, send what is left in sync or batch mode, write the output from the ledger,
then remember the fingerprints (a sync job that nothing makes wait for the count
sends as the count goes: ``_what_to_send``). A job whose estimate does not fit
its budget (``budget.py``) sends nothing and leaves its output and state as they were;
one whose spend reaches its budget stops sending, keeps its rows and fails (exit 1)
with the rest left for a later apply. Interrupted (``stop`` set) or not, the output is
written from whatever the ledger holds, so results that arrived are never lost; only a
run that got no answer from the provider (or ended unreachable, exit 4) leaves the
previous output file as it was.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from agentflow_jobs.errors import AgentFlowError, UsageError
from agentflow_jobs.io import ROW_BY_ROW
from agentflow_jobs.runner.backend import PgLocation
from agentflow_jobs.runner.budget import Budget
from agentflow_jobs.runner.counts import RunCounts
from agentflow_jobs.runner.fingerprints import input_fingerprint
from agentflow_jobs.runner.items import RenderedItem
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.output import write_output
from agentflow_jobs.runner.plan import (
    JobPlan,
    count_items,
    count_to_end,
    order_jobs,
    plan_head,
    upstream_of,
)
from agentflow_jobs.runner.progress import NullProgress, Progress
from agentflow_jobs.runner.report import ApplyReport, JobReport, finish_job
from agentflow_jobs.runner.send import RunOptions, cancel_sent, send_job
from agentflow_jobs.runner.state import State
from agentflow_jobs.runner.workspace import Workspace, open_workspace
from agentflow_jobs.spec import JobSpec

__all__ = [
    "ApplyReport",
    "JobReport",
    "apply_jobs",
    "blocked_by_upstream",
    "cancel_job",
    "select_jobs",
]

log = structlog.get_logger()


def select_jobs(specs: Iterable[JobSpec | Job], names: Sequence[str] | None) -> list[Job]:
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


def _unchanged(job: Job, state: State, plan: JobPlan, report: JobReport) -> None:
    record = state.job(job.name)
    report.tokens = int(record.summary.get("tokens", 0)) if record else 0
    report.completed, report.failed = plan.cached, plan.failed
    report.input_errors = plan.input_errors
    report.exit_code = 1 if plan.status == "failed" else 0
    report.message = "unchanged since the last apply" + (
        "; `retry` re-sends its failed items" if plan.status == "failed" else ""
    )


def _apply_one(job: Job, state: State, run: RunOptions) -> JobReport:
    """Plan, send, write one job; a job that cannot run is reported, never raised."""
    started = time.monotonic()
    structlog.contextvars.bind_contextvars(job=job.name)
    report = JobReport(name=job.name, status="new", output=job.spec.output_display)
    try:
        input_fp = input_fingerprint(job.spec.input_location)
        plan = plan_head(job, state, force=run.force, retry=run.retry)
        report.status, report.mode = plan.status, plan.mode
        if plan.pending:
            counting = count_items(job, state, plan, mode=run.mode, force=run.force, retry=run.retry)
            stream, pending = _what_to_send(job, plan, run, counting)
            report.mode, report.total, report.cached = plan.mode, plan.total, plan.cached
            _apply_changed(job, state, plan, report, run, input_fp, stream, pending)
        else:
            report.total, report.cached = plan.total, plan.cached
            _unchanged(job, state, plan, report)
    except AgentFlowError as exc:
        report.status, report.message, report.exit_code = "error", str(exc), exc.exit_code
        log.error("job failed to run", error=str(exc))
    report.seconds = time.monotonic() - started
    run.progress.job_finished(report)
    return report


def _what_to_send(
    job: Job, plan: JobPlan, run: RunOptions, counting: Iterator[RenderedItem]
) -> tuple[Iterator[RenderedItem] | None, list[RenderedItem] | None]:
    """``(stream, pending)``: the count itself, to send from as it yields, when nothing
    has to wait for its totals; else the count run to its end here, and the items it
    found to send (``count_to_end``: None when too many to keep in memory).

    Only a job its spec (or ``--mode sync``) sends in sync mode streams: ``auto`` picks
    sync or batch by the number to send. The totals also decide a budget (the estimate)
    and what batches in flight left. And a bad input must still fail the job before any
    item of it is paid for: with ``input.on_error: fail`` (any bad line), and in the
    formats where one bad element stops the whole file (``io.ROW_BY_ROW`` are the
    others). Otherwise sending starts with the first item to send and the count goes on
    as items are sent: the 0.2 s a 10,000-item count takes (4 s for 200,000 rows) no
    longer come before the first request. A count that finds nothing to send ends here
    too, so no client is opened for nothing.
    """
    waits = run.budget.active or plan.open_batches or job.spec.input.on_error == "fail"
    if waits or job.spec.input_format not in ROW_BY_ROW or (run.mode or job.spec.mode) != "sync":
        return None, count_to_end(counting)
    first = next(counting, None)
    if first is None:
        return None, []
    plan.mode = "sync"
    return itertools.chain([first], counting), None


def _apply_changed(
    job: Job,
    state: State,
    plan: JobPlan,
    report: JobReport,
    run: RunOptions,
    input_fp: str | None,
    stream: Iterator[RenderedItem] | None,
    pending: list[RenderedItem] | None,
) -> None:
    """Send what is pending, then write the output from the ledger and remember the job.

    ``stream`` and ``pending``: what to send (``_what_to_send``).
    """
    refused = run.budget.refusal(plan.cost, plan.to_send)
    if refused is not None:
        report.status, report.exit_code, report.message = "over_budget", 1, refused
        log.error("job refused by its budget", reason=refused)
        return
    counts = _send_pending(job, state, plan, report, run, stream, pending)
    # spent, whatever happens to the output: the run's budget and record count it
    report.cost_usd, report.requests = counts.spent_usd, counts.requests
    keep = _keep_output(report, counts)
    output = job.spec.output_path
    existed = output.is_file()
    summary = write_output(job, state, keep_output=keep, items=plan.items, known=counts.entries)
    finish_job(job, state, report, summary, input_fp, run.run_id, counts)
    _over_budget(report, run.budget, counts)
    if keep:
        kept = (f"the previous output {output.name} was left as it was"
                if existed else f"no output was written to {output.name}")
        report.message = (report.message or "nothing was answered") + (
            f"; {kept} (the next apply that gets answers writes it)"
        )


def _send_pending(
    job: Job,
    state: State,
    plan: JobPlan,
    report: JobReport,
    run: RunOptions,
    stream: Iterator[RenderedItem] | None,
    pending: list[RenderedItem] | None,
) -> RunCounts:
    """Send the job's pending items; a streamed count is finished here, however the
    sending ended, so the plan's totals are whole before the output is written."""
    if stream is None:
        run.progress.job_started(job.name, plan.mode, plan.to_send, plan.total)
        log.info("applying job", mode=plan.mode, to_send=plan.to_send, cached=plan.cached)
        if plan.to_send or plan.open_batches:
            return send_job(job, state, plan, report, run, items=pending)
        return RunCounts()
    run.progress.job_started(job.name, plan.mode, None, None)  # counted while sending
    log.info("applying job", mode=plan.mode, to_send="counted while sending")
    counts = send_job(job, state, plan, report, run, items=_counted(stream, job, plan, run))
    count_to_end(stream)  # what a stop or a failure left uncounted
    report.total, report.cached = plan.total, plan.cached
    return counts


def _counted(
    stream: Iterator[RenderedItem], job: Job, plan: JobPlan, run: RunOptions
) -> Iterator[RenderedItem]:
    """``stream``, telling the progress the job's totals once the count is through."""
    yield from stream
    run.progress.job_counted(job.name, plan.to_send, plan.total)
    log.info("job counted", to_send=plan.to_send, cached=plan.cached, items=plan.total)


def _over_budget(report: JobReport, budget: Budget, counts: RunCounts) -> None:
    """A job that stopped sending at its budget with items left fails, saying so."""
    reason = budget.reached(counts)
    if reason is None or not report.missing:
        return
    report.exit_code = max(report.exit_code, 1)
    report.message = (
        f"stopped sending: {reason}; the {counts.answered} answered row(s) are written and "
        f"{report.missing} item(s) are left for a later apply"
    )
    log.warning("budget reached", reason=reason, missing=report.missing)


def _keep_output(report: JobReport, counts: RunCounts) -> bool:
    """Whether this run must leave the output as it was (write no new file).

    A run that got no answer at all and ended with the provider unreachable (exit 4),
    every request unanswered, or the run failing as a whole (a broken provider setting,
    exit 2) has nothing to put in place of the previous rows, which may well be another
    model's: emptying the file would throw good rows away for a failure the next apply
    retries anyway. Their items stay in the errors file and the ledger. A run that got
    answers writes them, however it ended.
    """
    if counts.answered:
        return False
    return report.exit_code == 4 or counts.provider_down or report.status == "error"


def blocked_by_upstream(
    job: Job, jobs: Sequence[Job], finished: Mapping[str, JobReport]
) -> JobReport | None:
    """A skipped report when the job producing this job's input ran and did not finish.

    ``finished`` holds the reports of the jobs run so far; an upstream job that did not
    run (up to date, or not selected) blocks nothing. Apply and watch both decide here.
    """
    upstream = upstream_of(job, jobs)
    done = finished.get(upstream.name) if upstream is not None else None
    if upstream is None or done is None or done.status in ("applied", "up_to_date"):
        return None
    return JobReport(
        name=job.name,
        status="skipped",
        output=job.spec.output_display,
        message=f"upstream job {upstream.name} did not finish ({done.status})",
    )


def apply_jobs(
    specs: Iterable[JobSpec | Job],
    *,
    state: Workspace | str | Path | PgLocation,
    mode: str | None = None,
    force: bool = False,
    detach: bool = False,
    job_names: Sequence[str] | None = None,
    retry: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    lock_timeout: float = 0.0,
    max_cost_usd: float | None = None,
) -> ApplyReport:
    """Apply ``specs`` against the state (a held Workspace, or a path to lock for this call).

    ``max_cost_usd`` is the budget of the whole run, beside each job's own.
    """
    jobs = select_jobs(specs, job_names)
    run = RunOptions(
        run_id=uuid.uuid4().hex[:12], stop=stop or threading.Event(),
        progress=progress or NullProgress(), mode=mode, force=force, retry=retry, detach=detach,
        max_cost_usd=max_cost_usd,
    )
    report = ApplyReport(run_id=run.run_id)
    with open_workspace(state, lock_timeout=lock_timeout, command="apply") as ws:
        structlog.contextvars.bind_contextvars(run_id=run.run_id)
        ws.state.start_run(run.run_id, "retry" if retry else "apply")
        try:
            with _fewer_collections():
                _apply_all(jobs, ws.state, run, report)
        finally:
            status = "interrupted" if report.interrupted else "done"
            ws.state.finish_run(run.run_id, status, report.cost_usd)
            structlog.contextvars.unbind_contextvars("run_id", "job")
    return report


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Cyclic garbage collection rarely, and never over what exists before sending.

    A sync job allocates a few dozen objects per item (request, reply, row) that nearly
    all die young, while the plan holds up to 10,000 pending items alive: at Python's
    default thresholds the collector ran some 1,300 times in a 10,000-item apply and
    re-walked those items on each full pass, 1.3 s of an 11 s run, stalling the event
    loop with the window full (bench ``e2e``). Objects alive at the start are frozen
    out of collection (sync mode freezes again once the first answers are in: the price
    table, the items read, the connections). What is still walked is what a run keeps
    and the requests in flight: a first collection after 20,000 new objects made 7
    pauses of 10-23 ms in a 10,000-item apply (73-77 ms in all); after 100,000 there is
    none in a 10,000- or a 50,000-item apply. Cyclic garbage still counts towards the
    100,000, so it is still collected. The thresholds come back afterwards (``watch``
    runs many applies).
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 4, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _apply_all(jobs: list[Job], state: State, run: RunOptions, report: ApplyReport) -> None:
    """Each job in dependency order, skipping those whose upstream job did not finish."""
    finished: dict[str, JobReport] = {}
    for job in jobs:
        if run.stop.is_set():
            report.interrupted = True
            break
        budget = Budget(job.spec.execution.max_cost_usd, run.max_cost_usd, report.cost_usd)
        job_run = replace(run, budget=budget)
        job_report = blocked_by_upstream(job, jobs, finished) or _apply_one(job, state, job_run)
        report.jobs.append(job_report)
        finished[job.name] = job_report
    report.interrupted = report.interrupted or run.stop.is_set()


def _cancel(job: Job, state: State, run_id: str) -> JobReport:
    output = job.spec.output_display
    report = JobReport(name=job.name, status="cancelled", mode="batch", output=output)
    open_batches = state.batches(job.name, open_only=True)
    if open_batches:
        report.batches = cancel_sent(job, state, run_id).collected
    summary = write_output(job, state)
    finish_job(job, state, report, summary, input_fingerprint(job.spec.input_location), run_id)
    report.message = f"{len(open_batches)} batch(es) cancelled"
    return report


def cancel_job(
    specs: Iterable[JobSpec | Job],
    name: str,
    *,
    state: Workspace | str | Path | PgLocation,
    lock_timeout: float = 0.0,
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
