"""Planning: what an apply would do, per job, without sending anything.

A job is *up to date* when its spec, input file and output file are exactly as the
last apply left them (checked from fingerprints, no read of the input); otherwise the
input is streamed and every item's ledger key looked up: answered items are reused,
failed ones are kept (``retry`` re-sends them), the rest are to send. Each item to send
adds the estimated tokens of its rendered prompt; the job's totals are then priced once
(``costs.estimate_cost``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from agentflow_jobs.errors import Problem, SpecError
from agentflow_jobs.hashing import canonical_json
from agentflow_jobs.pricing import estimate_prompt_tokens, request_overhead_tokens
from agentflow_jobs.runner.costs import NOTHING_TO_SEND, CostEstimate, estimate_cost
from agentflow_jobs.runner.counts import KEEP_AT_MOST
from agentflow_jobs.runner.fingerprints import file_fingerprint, job_fingerprint, same_input
from agentflow_jobs.runner.items import FIRST_BLOCK, RenderedItem, blocks, job_items
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.ledger import Ledger
from agentflow_jobs.runner.state import State

__all__ = [
    "JobPlan",
    "count_items",
    "count_to_end",
    "drift",
    "order_jobs",
    "plan_head",
    "plan_job",
    "resolve_mode",
    "upstream_of",
]

# Token estimate for a job with no earlier answers: the prompt's characters / 4 plus a
# nominal reply per operation (a label is a word; the others are a few sentences).
_CHARS_PER_TOKEN = 4
_REPLY_TOKENS = {"label": 10, "extract": 100, "summarize": 120, "enrich": 100, "run": 150}


@dataclass
class JobPlan:
    """What apply would do for one job."""

    job: str
    status: str  # up_to_date | new | changed | running | failed
    reasons: list[str] = field(default_factory=list)
    mode: str = "sync"
    total: int = 0
    cached: int = 0
    failed: int = 0
    input_errors: int = 0
    to_send: int = 0
    in_batches: int = 0
    est_tokens: int | None = None
    est_input_tokens: int = 0  # of the items to send, from their rendered prompts
    est_output_tokens: int = 0
    cost: CostEstimate = NOTHING_TO_SEND
    open_batches: int = 0
    output: str = ""  # the destination as people see it (a URL without its password)
    # every item of the input, when few: apply writes the output from these
    items: list[RenderedItem] | None = field(default=None, repr=False)
    # characters the items to send add to their prompts (the rule-of-thumb est_tokens)
    prompt_chars: int = field(default=0, repr=False)

    @property
    def pending(self) -> bool:
        return self.status != "up_to_date" and self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _INTERNAL}
        data["cost"] = self.cost.to_dict()
        data["pending"] = self.pending
        data["est_requests"] = self.to_send  # one provider request per item
        return data


_INTERNAL = ("items", "prompt_chars")


def resolve_mode(job: Job, override: str | None, to_send: int) -> str:
    mode = override or job.spec.mode or "auto"
    if mode == "auto":
        return "batch" if to_send > job.spec.execution.auto_batch_threshold else "sync"
    return mode


def order_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Jobs whose input is another job's output run after it; a cycle is a spec error."""
    by_output = {job.spec.output_path.resolve(): job for job in jobs}
    ordered: list[Job] = []
    state: dict[str, str] = {}

    def visit(job: Job, chain: list[str]) -> None:
        mark = state.get(job.name)
        if mark == "done":
            return
        if mark == "visiting":
            cycle = " -> ".join([*chain[chain.index(job.name) :], job.name])
            problem = Problem(
                str(job.spec.source) or job.name, 1, 1, f"jobs form a cycle: {cycle}", job=job.name
            )
            raise SpecError([problem])
        state[job.name] = "visiting"
        upstream = by_output.get(job.spec.input_path.resolve())
        if upstream is not None and upstream is not job:
            visit(upstream, [*chain, job.name])
        state[job.name] = "done"
        ordered.append(job)

    for job in jobs:
        visit(job, [])
    return ordered


def upstream_of(job: Job, jobs: Sequence[Job]) -> Job | None:
    for other in jobs:
        if other is not job and other.spec.output_path.resolve() == job.spec.input_path.resolve():
            return other
    return None


def plan_job(
    job: Job, state: State, *, mode: str | None = None, force: bool = False, retry: bool = False
) -> JobPlan:
    """Plan one job: fingerprints first, then (if anything changed) a streaming count."""
    plan = plan_head(job, state, force=force, retry=retry)
    if plan.pending:
        count_to_end(count_items(job, state, plan, mode=mode, force=force, retry=retry))
    return plan


def plan_head(job: Job, state: State, *, force: bool = False, retry: bool = False) -> JobPlan:
    """The plan as far as fingerprints tell: up to date (or failed) and complete, or
    ``pending`` with its items still to count (``count_items``)."""
    record = state.job(job.name)
    open_batches = state.batches(job.name, open_only=True)
    plan = JobPlan(
        job=job.name, status="new" if record is None else "changed", output=job.spec.output_display
    )
    plan.open_batches = len(open_batches)
    if record is not None:
        plan.reasons = drift(job, record.spec_hash, record.input_fp, record.output_fp)
        if record.summary.get("missing"):
            plan.reasons.append("unfinished")
        if record.summary.get("retryable"):
            plan.reasons.append("provider failures to re-send")
    if open_batches:
        plan.status = "running"
        plan.reasons.append(f"{len(open_batches)} batch(es) in flight")
    if record is not None and not plan.reasons and not force and not retry:
        plan.status = "failed" if record.status == "failed" else "up_to_date"
        _from_summary(plan, record.summary)
        plan.mode = str(record.summary.get("mode", "sync"))
    return plan


def drift(
    job: Job, spec_hash: str | None, input_fp: str | None, output_fp: str | None
) -> list[str]:
    """Why a job is out of date: spec, model, output settings, input, output file."""
    reasons = []
    if spec_hash != job_fingerprint(job):
        old = (spec_hash or "").split("|")
        new = job_fingerprint(job).split("|")
        if len(old) != 3 or old[0] != new[0]:
            reasons.append("spec")
        if len(old) == 3 and old[2] != new[2]:
            reasons.append("model")
        if len(old) == 3 and old[1] != new[1]:
            reasons.append("output settings")
    if not same_input(input_fp, job.spec.input_location):
        reasons.append("input")
    if output_fp != file_fingerprint(job.spec.output_location):
        reasons.append("output")
    return reasons


def _from_summary(plan: JobPlan, summary: dict[str, Any]) -> None:
    plan.total = int(summary.get("total", 0))
    plan.cached = int(summary.get("completed", 0))
    plan.failed = int(summary.get("failed", 0))
    plan.input_errors = int(summary.get("input_errors", 0))


def count_to_end(counting: Iterator[RenderedItem]) -> list[RenderedItem] | None:
    """Run a count to its end; the items it found to send, when at most ``KEEP_AT_MOST``
    (apply then sends them rather than reading the input again), else None."""
    kept: list[RenderedItem] | None = []
    for rendered in counting:
        kept = _kept(kept, (rendered,))
    return kept


def _kept(kept: list[RenderedItem] | None, more: Iterable[RenderedItem]) -> list[RenderedItem] | None:
    """``kept`` with ``more``, while that is at most ``KEEP_AT_MOST``; None past it, for good."""
    if kept is None:
        return None
    kept.extend(more)
    return kept if len(kept) <= KEEP_AT_MOST else None


def count_items(
    job: Job, state: State, plan: JobPlan, *, mode: str | None, force: bool, retry: bool
) -> Iterator[RenderedItem]:
    """Count the job's input into ``plan``, yielding each item to send once its block is
    counted; the totals, estimate and mode are final when the iterator is exhausted.

    Apply sends the items as they come when nothing has to wait for the totals. A row
    written after the count started was answered by this very run, and does not count as
    an earlier answer: the totals are those of the input as it was when the count began.
    """
    count = _Count(job, state, plan, force=force, retry=retry)
    kept: list[RenderedItem] | None = []
    for block in blocks(job_items(job), first=FIRST_BLOCK):
        kept = _kept(kept, block)
        yield from count.block(block)
    plan.items = kept
    _estimate(job, count.ledger, plan)
    plan.mode = resolve_mode(job, mode, plan.to_send)
    if plan.to_send and plan.mode == "batch" and job.price.native_batch:
        plan.cost = replace(plan.cost, batch_paid=True)  # the provider's batch API: its price


class _Count:
    """One count of a job's input into its plan, a block at a time."""

    def __init__(self, job: Job, state: State, plan: JobPlan, *, force: bool, retry: bool) -> None:
        self.job, self.state, self.plan = job, state, plan
        self.force, self.retry = force, retry
        self.ledger = Ledger(state)
        self.since = time.time()  # rows written from now on are this run's answers
        self.seen: set[str] = set()
        provider = job.profile.provider if job.profile is not None else None
        self.overhead = request_overhead_tokens(provider, asks_schema=job.operation.asks_schema)

    def block(self, block: list[RenderedItem]) -> list[RenderedItem]:
        """Count ``block`` into the plan; its items to send."""
        plan = self.plan
        keys = [r.key for r in block if r.key is not None]
        statuses = {} if self.force else self.ledger.statuses(keys)
        in_batches = self.state.keys_in_open_batches(keys) if plan.open_batches else set()
        fresh: list[RenderedItem] = []
        for rendered in block:
            plan.total += 1
            if rendered.key is None:
                plan.input_errors += 1
                continue
            status, created = statuses.get(rendered.key, (None, 0.0))
            if created >= self.since:
                status = None
            if status == "completed" or (status == "failed" and not self.retry):
                plan.cached += status == "completed"
                plan.failed += status == "failed"
            elif rendered.key in in_batches:
                plan.in_batches += 1
            elif rendered.key not in self.seen:
                # duplicates within the file are sent once; the bounded set is a plan nicety
                if len(self.seen) < 100_000:
                    self.seen.add(rendered.key)
                _to_send(self.job, plan, rendered, self.overhead)
                fresh.append(rendered)
        return fresh


def _to_send(job: Job, plan: JobPlan, rendered: RenderedItem, overhead: int) -> None:
    plan.to_send += 1
    plan.prompt_chars += _item_chars(rendered.item)
    messages = job.operation.messages(rendered.item or {})
    plan.est_input_tokens += estimate_prompt_tokens(messages or []) + overhead


def _estimate(job: Job, ledger: Ledger, plan: JobPlan) -> None:
    """Tokens from earlier answers when there are some, else by rule; the cost estimate."""
    counts = ledger.job_counts(job.name)
    answered = counts["completed"] + counts["failed"] + counts["retryable"]
    completed_tokens = counts.get("tokens", 0)
    if answered and completed_tokens:
        plan.est_tokens = int(completed_tokens / answered * plan.to_send)
    else:
        plan.est_tokens = _estimate_tokens(job, plan.prompt_chars, plan.to_send)
    if plan.to_send:
        plan.est_output_tokens = plan.to_send * job.operation.output_tokens()
        plan.cost = estimate_cost(job.price, plan.est_input_tokens, plan.est_output_tokens)


def _item_chars(item: dict[str, Any] | None) -> int:
    """The characters an item adds to its prompt (template values, content)."""
    return sum(
        len(v) if isinstance(v, str) else len(canonical_json(v)) for v in (item or {}).values()
    )


def _estimate_tokens(job: Job, item_chars: int, requests: int) -> int:
    """Tokens for ``requests`` new items: prompt characters / 4 plus a nominal reply."""
    # every request repeats the job's own prompt text: prompts, categories, schema
    per_request = len(canonical_json(job.operation.hash_fields)) // _CHARS_PER_TOKEN
    per_request += _REPLY_TOKENS.get(job.operation.kind, 150)
    return item_chars // _CHARS_PER_TOKEN + per_request * requests
