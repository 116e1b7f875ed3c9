"""Batch mode: chunks go to ``client.batches.submit``; output is paged into the ledger.

Resume protocol, so a batch is never submitted twice for the same chunk:
1. an *intent* row (job, chunk, idempotency key, item keys, items) is committed first;
2. the chunk is submitted with that idempotency key; a crash here leaves the intent,
   and the next apply re-submits it with the same key and gets the same batch back;
3. the batch id is recorded; from then on the runner only re-attaches to it;
4. when the batch is terminal its rows are paged into the ledger (one transaction per
   page) and the row is marked collected. Items a cancelled or failed batch did not
   answer are free again and go into a new chunk next time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import structlog

from agentflow_jobs.errors import NotFoundError
from agentflow_jobs.hashing import content_hash
from agentflow_jobs.runner.budget import Budget
from agentflow_jobs.runner.counts import RunCounts
from agentflow_jobs.runner.crash import crash_point
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.ledger import Ledger
from agentflow_jobs.runner.state import BatchRecord, State
from agentflow_jobs.runner.sync_mode import Selector, wait_or_stop
from agentflow_jobs.sdk.client import AsyncAgentFlow
from agentflow_jobs.wire import Batch, BatchProgress, ResultRow

__all__ = ["cancel_batches", "collect_batches", "submit_batches"]

log = structlog.get_logger()
_PAGE = 500


async def _submit(job: Job, state: State, client: AsyncAgentFlow, record: BatchRecord) -> None:
    items = record.items(state)
    structlog.contextvars.bind_contextvars(chunk=record.chunk)
    batch = await client.batches.submit(
        job.operation.kind,
        items,
        job.spec.model,
        idempotency_key=record.idempotency_key,
        metadata={"job": job.name, "chunk": str(record.chunk)},
        **job.send_fields(),
    )
    crash_point("after_submit")
    state.update_batch(record.seq, status=str(batch.status), batch_id=batch.id)
    log.info("batch submitted", batch_id=batch.id, items=len(items))


async def submit_batches(
    job: Job,
    state: State,
    client: AsyncAgentFlow,
    *,
    selector: Selector,
    run_id: str,
    stop: threading.Event,
    counts: RunCounts,
    budget: Budget | None = None,
) -> None:
    """Re-submit unrecorded intents, then submit new chunks of pending items; under a
    ``budget``, each collected before the next, and none once the spend reached it."""
    for record in state.batches(job.name, open_only=True):
        if record.batch_id is None and not stop.is_set():
            await _submit(job, state, client, record)
    chunk_no = len(state.batches(job.name))
    for chunk in selector.chunks(job.spec.execution.batch_size):
        if stop.is_set() or (budget and budget.reached(counts)):
            break
        keys = [r.key or "" for r in chunk]
        key = content_hash("batch", job.name, keys, run_id, chunk_no)
        record = state.add_batch_intent(
            job.name, chunk_no, key, keys, [r.item or {} for r in chunk], run_id
        )
        await _submit(job, state, client, record)
        counts.submitted += 1
        counts.sent += len(chunk)
        chunk_no += 1
        if budget is not None:
            await collect_batches(job, state, client, stop=stop, counts=counts, run_id=run_id)


async def _pages(client: AsyncAgentFlow, batch_id: str) -> AsyncIterator[list[ResultRow]]:
    """The batch's output pages as the service serves them (one ledger commit each)."""
    offset = 0
    while True:
        page = await client.batches.output(batch_id, "json", offset, _PAGE)
        if not page.results:
            return
        yield list(page.results)
        offset += len(page.results)
        if offset >= page.total:
            return


async def _collect(
    job: Job,
    state: State,
    client: AsyncAgentFlow,
    record: BatchRecord,
    status: str,
    counts: RunCounts,
    run_id: str | None,
) -> None:
    ledger = Ledger(state)
    assert record.batch_id is not None
    async for page in _pages(client, record.batch_id):
        triples = [(record.keys[int(row["index"])], int(row["index"]), row) for row in page]
        crash_point("before_ledger_commit")
        ledger.commit(job.name, "batch", triples, run_id=run_id)
        crash_point("after_ledger_commit")
        counts.add_rows(page)
    state.update_batch(record.seq, status=f"collected:{status}")
    counts.collected += 1
    log.info("batch collected", batch_id=record.batch_id, status=status)


async def _check(
    job: Job,
    state: State,
    client: AsyncAgentFlow,
    record: BatchRecord,
    counts: RunCounts,
    run_id: str | None,
) -> BatchProgress:
    """Look at one recorded batch: collect it when terminal, else record its progress."""
    assert record.batch_id is not None
    structlog.contextvars.bind_contextvars(batch_id=record.batch_id)
    try:
        batch: Batch = await client.batches.retrieve(record.batch_id)
    except NotFoundError:
        # the service forgot it (store wiped): its items become pending again
        log.warning("batch not found; its items will be sent again")
        state.update_batch(record.seq, status="collected:lost")
        return BatchProgress()
    progress = batch.progress
    # the provider's own batches (provider.batch: native), for status
    provider = [b.model_dump() for b in batch.provider_batches]
    if batch.is_terminal:
        await _collect(job, state, client, record, str(batch.status), counts, run_id)
    elif (batch.status, progress.completed, provider) != (record.status, record.completed, record.provider):
        state.update_batch(record.seq, status=str(batch.status), completed=progress.completed,
                           failed=progress.failed, provider=provider)
    return progress


async def collect_batches(
    job: Job,
    state: State,
    client: AsyncAgentFlow,
    *,
    stop: threading.Event,
    counts: RunCounts,
    run_id: str | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
    poll: float = 0.2,
) -> None:
    """Wait for the job's recorded batches and page their output into the ledger."""
    while not stop.is_set():
        open_records = [r for r in state.batches(job.name, open_only=True) if r.batch_id]
        if not open_records:
            break
        seen = [await _check(job, state, client, r, counts, run_id) for r in open_records]
        structlog.contextvars.unbind_contextvars("batch_id")
        if on_progress:
            done, failed = sum(p.completed for p in seen), sum(p.failed for p in seen)
            on_progress(done, failed, sum(p.total for p in seen))
        await wait_or_stop(stop, poll)
        poll = min(poll * 1.5, 2.0)


async def cancel_batches(
    job: Job, state: State, client: AsyncAgentFlow, *, counts: RunCounts, run_id: str | None = None
) -> None:
    """Cancel the job's in-flight batches and record what they finished."""
    for record in state.batches(job.name, open_only=True):
        if record.batch_id is None:
            state.update_batch(record.seq, status="collected:cancelled")
            continue
        batch = await client.batches.cancel(record.batch_id)
        while not batch.is_terminal:
            await asyncio.sleep(0.1)
            batch = await client.batches.retrieve(record.batch_id)
        await _collect(job, state, client, record, str(batch.status), counts, run_id)
