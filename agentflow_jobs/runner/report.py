"""What an apply reports per job, and how a job's outcome is decided and remembered.

After the output is written, a job is ``incomplete`` while items are missing, ``error``
(exit 4) when the provider failed every request of the run, ``failed`` (exit 1) above
its ``max_failure_rate``, else ``applied``. The state then remembers the fingerprints
and the counts, exactly as reported.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from agentflow_jobs.runner.counts import RunCounts
from agentflow_jobs.runner.fingerprints import file_fingerprint, job_fingerprint
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.output import OutputSummary
from agentflow_jobs.runner.state import JobRecord, State

__all__ = ["ApplyReport", "JobReport", "finish_job"]

# statuses decided before the output was written; the state records them as they are
_DECIDED = ("submitted", "error", "cancelled")


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
    cost_usd: float | None = 0.0  # what this run's answers for the job cost; None: unknown
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

    @property
    def cost_usd(self) -> float | None:
        """What the run's answers cost over every job; None when any job's is unknown."""
        costs = [job.cost_usd for job in self.jobs]
        return None if None in costs else sum(cost or 0.0 for cost in costs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "cost_usd": self.cost_usd,
            "jobs": [job.to_dict() for job in self.jobs],
        }


def finish_job(
    job: Job,
    state: State,
    report: JobReport,
    summary: OutputSummary,
    input_fp: str | None,
    run_id: str,
    counts: RunCounts | None = None,
) -> None:
    """Fill ``report`` from the written output, decide the outcome, and remember it."""
    report.total, report.completed, report.failed = summary.total, summary.completed, summary.failed
    report.input_errors, report.missing = summary.input_errors, summary.missing
    report.tokens = summary.tokens
    report.errors = str(job.spec.errors_path) if summary.failed or summary.input_errors else None
    if report.status not in _DECIDED:
        _decide(job, report, summary, counts)
    record = JobRecord(
        name=job.name,
        spec_hash=job_fingerprint(job),
        input_fp=input_fp,
        output_fp=file_fingerprint(job.spec.output_location),
        output_path=job.spec.output_display,
        last_apply=time.time(),
        last_run=run_id,
        status=report.status,
        summary={**_counts(summary), "mode": report.mode},
    )
    state.record_job(record)


def _counts(summary: OutputSummary) -> dict[str, int]:
    """The summary's counts, as the state keeps them (the errors file keeps the messages)."""
    counts = asdict(summary)
    del counts["first_input_error"]
    return counts


def _what_next(job: Job, summary: OutputSummary) -> str:
    """Retry for answers that failed; for items that could not be sent (a field the
    input lacks, a bad line), what the first one says: retrying cannot help those."""
    said: list[str] = []
    if summary.failed:
        said.append(f"`agentflow-jobs retry {job.name}` re-sends the {summary.failed} failed item(s)")
    if summary.input_errors:
        said.append(f"{summary.input_errors} item(s) could not be sent, which no retry changes: fix the "
                    f"input or the spec (first: {summary.first_input_error})")
    return "; ".join(said)


def _decide(job: Job, report: JobReport, summary: OutputSummary, counts: RunCounts | None) -> None:
    limit = job.spec.execution.max_failure_rate
    if summary.missing:
        report.status = "incomplete"
    elif counts is not None and counts.provider_down:
        report.status, report.exit_code = "error", 4
        report.message = (
            "the provider failed every request (see the errors file); nothing was paid "
            "for and a later apply sends these items again"
        )
    elif summary.failure_rate > limit:
        report.status, report.exit_code = "failed", 1
        report.message = (
            f"failure rate {summary.failure_rate:.1%} is above max_failure_rate "
            f"{limit:.1%}; good rows were written; " + _what_next(job, summary)
        )
    else:
        report.status = "applied"
