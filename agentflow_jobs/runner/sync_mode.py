"""Sync mode: items flow in chunks to ``client.completions.run``, several in flight.

At most ``execution.concurrency`` items are in flight in all (see ``request_shape``).

Each chunk's rows are committed to the ledger (one transaction) before the chunk
counts as done, so a kill loses at most the chunks in flight. Which items to send is
decided right before dispatch, on the event loop thread: the ledger is checked and the
keys claimed in one step with no await in between, so duplicates in the input are sent
once and a result that just arrived is never asked for again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import structlog

from agentflow_jobs.runner.counts import RunCounts
from agentflow_jobs.runner.crash import crash_point
from agentflow_jobs.runner.items import RenderedItem, blocks, job_items
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.ledger import Ledger
from agentflow_jobs.runner.state import State
from agentflow_jobs.sdk.client import AsyncAgentFlow

__all__ = ["Selector", "request_shape", "run_sync", "wait_or_stop"]

log = structlog.get_logger()


class Selector:
    """Picks the items to send from the input, claiming their keys.

    ``retry`` also picks items whose ledger row failed; ``force`` picks everything. A
    row written since this selector started was answered in this run and is never
    picked again (so ``force`` and ``retry`` send each distinct item once, with no
    per-item memory). ``skip`` names keys to leave alone (those in open batches).
    """

    def __init__(
        self,
        job: Job,
        state: State,
        *,
        force: bool = False,
        retry: bool = False,
        skip: Callable[[list[str]], set[str]] | None = None,
        items: Iterable[RenderedItem] | None = None,
    ) -> None:
        self._ledger = Ledger(state)
        self._items = blocks(iter(items) if items is not None else job_items(job))
        self._force = force
        self._retry = retry
        self._skip = skip
        self._since = time.time()
        self.claimed: set[str] = set()

    def _wanted(self, status: str | None, created: float) -> bool:
        if status is None:
            return True
        if created >= self._since:
            return False
        if status == "retryable":
            return True
        return self._force or (status == "failed" and self._retry)

    def next_block(self) -> list[RenderedItem] | None:
        """The next block's items to send (possibly empty); None at end of input."""
        block = next(self._items, None)
        if block is None:
            return None
        keys = [r.key for r in block if r.key is not None]
        rows = self._ledger.statuses(keys)
        skipped = self._skip(keys) if self._skip else set()
        picked: list[RenderedItem] = []
        for rendered in block:
            key = rendered.key
            if key is None or key in self.claimed or key in skipped:
                continue
            status, created = rows.get(key, (None, 0.0))
            if self._wanted(status, created):
                self.claimed.add(key)
                picked.append(rendered)
        return picked

    def release(self, keys: list[str]) -> None:
        """Forget keys whose rows are committed (the ledger now answers for them)."""
        self.claimed.difference_update(keys)

    def chunks(self, size: int) -> Iterator[list[RenderedItem]]:
        buffer: list[RenderedItem] = []
        while (block := self.next_block()) is not None:
            buffer.extend(block)
            while len(buffer) >= size:
                yield buffer[:size]
                buffer = buffer[size:]
        if buffer:
            yield buffer


def request_shape(concurrency: int, chunk_size: int) -> tuple[int, int]:
    """Items per request and requests in flight: together at most ``concurrency`` items.

    The engine works on every item of a request at once (one provider request each, up
    to the provider's own limit), so items in flight are bounded here, by splitting: about
    four requests of ``concurrency / 4`` items (never more than ``chunk_size``), so one
    slow item holds back only its own small request while the others keep going.
    """
    size = max(1, min(chunk_size, concurrency // 4))
    return size, max(1, concurrency // size)


class _Sender:
    """Sends chunks of one job, committing each chunk's rows before it counts as done."""

    def __init__(
        self,
        job: Job,
        state: State,
        client: AsyncAgentFlow,
        counts: RunCounts,
        run_id: str | None,
        on_chunk: Callable[[int, int], None] | None,
    ) -> None:
        self.job, self.client, self.counts = job, client, counts
        self.ledger = Ledger(state)
        self.run_id, self.on_chunk = run_id, on_chunk
        self.failure: list[BaseException] = []

    async def send(self, chunk: list[RenderedItem]) -> None:
        job = self.job
        result = await self.client.completions.run(
            [r.item or {} for r in chunk],
            job.spec.model,
            operation=job.operation.kind,
            **job.send_fields(),
        )
        rows = result.results
        crash_point("before_ledger_commit")
        triples = [(r.key or "", r.index, row) for r, row in zip(chunk, rows, strict=True)]
        self.ledger.commit(job.name, "sync", triples, run_id=self.run_id)
        crash_point("after_ledger_commit")
        done, failed = self.counts.add_rows(rows, reached=True)
        if self.on_chunk:
            self.on_chunk(done, failed)


async def run_sync(
    job: Job,
    state: State,
    client: AsyncAgentFlow,
    *,
    selector: Selector,
    stop: threading.Event,
    counts: RunCounts,
    run_id: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> None:
    """Send every selected item, counting into ``counts``; stop dispatching on ``stop``."""
    execution = job.spec.execution
    size, window = request_shape(execution.concurrency, execution.chunk_size)
    slots = asyncio.Semaphore(window)
    sender = _Sender(job, state, client, counts, run_id, on_chunk)
    tasks: set[asyncio.Task[None]] = set()

    async def send(chunk: list[RenderedItem]) -> None:
        try:
            await sender.send(chunk)
        except Exception as exc:  # the whole request failed: stop taking new work
            sender.failure.append(exc)
        finally:
            selector.release([r.key or "" for r in chunk])
            slots.release()

    for chunk in selector.chunks(size):
        await slots.acquire()
        if stop.is_set() or sender.failure:
            slots.release()
            break
        task = asyncio.create_task(send(chunk))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        # results that arrive after a stop are still kept
        await asyncio.gather(*list(tasks), return_exceptions=True)
    if sender.failure:
        raise sender.failure[0]


async def wait_or_stop(stop: threading.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, waking early when ``stop`` is set."""
    deadline = asyncio.get_running_loop().time() + seconds
    with contextlib.suppress(asyncio.CancelledError):
        while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(min(0.05, seconds))
