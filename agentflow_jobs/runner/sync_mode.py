"""Sync mode: each item is its own ``client.completions.run`` request, the window kept full.

``execution.concurrency`` workers each take the next item, send it, and take another
once its row is committed, so the items in flight plus the rows received and not yet
committed are never more than ``concurrency``. A worker goes straight from its committed
row to its next request, with no hand-off through a semaphore and a new task: each
hand-off waited behind every other reply that was ready (~1 % of the window, 241 of 256
places busy instead of 244; bench/README.md, ``e2e``). (Chunks of items per request held every
place of a chunk until its slowest item answered: one item waiting out a Retry-After
idled the rest.) No item is dispatched once the job's spend in this run reached a
budget (``budget.py``): those in flight finish and are kept.

Rows are committed to the ledger in groups (one transaction each, see ``commit_group``):
when a group is full, else once the event loop has run the callbacks that were ready
when the group's first row arrived (the replies read in the same turn of the loop
share a transaction), and at the end. A worker waits for its row's commit before taking
another item, so a kill loses at most the ``concurrency`` items in the window, as when
chunks were in flight. A failure (the request as a whole, the ledger, reading the input)
stops every worker from taking more; what is in flight is still kept.
Which items to send is decided right before dispatch, on the event loop thread: the
ledger is checked and the keys claimed in one step with no await in between, so
duplicates in the input are sent once and a result that just arrived is never asked for
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

import structlog

from agentflow_jobs.runner.budget import Budget
from agentflow_jobs.runner.counts import RunCounts
from agentflow_jobs.runner.crash import crash_point
from agentflow_jobs.runner.items import FIRST_BLOCK, RenderedItem, blocks, job_items
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.ledger import Ledger, first_entry
from agentflow_jobs.runner.state import State
from agentflow_jobs.sdk.client import AsyncAgentFlow
from agentflow_jobs.wire import ResultRow

__all__ = ["Selector", "commit_group", "run_sync", "wait_or_stop"]

log = structlog.get_logger()

# the workers start in this many waves, spread over this long a worker until the first
# answer (see _start_in_waves)
WAVES = 16
SPREAD_PER_WORKER = 0.0005


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
        self._items = blocks(iter(items) if items is not None else job_items(job), first=FIRST_BLOCK)
        self._force = force
        self._retry = retry
        self._skip = skip
        self._since = time.time()
        # claimed keys, each saying whether the ledger had no row for it (a new key)
        self.claimed: dict[str, bool] = {}

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
                self.claimed[key] = status is None
                picked.append(rendered)
        return picked

    def release(self, keys: list[str]) -> None:
        """Forget keys whose rows are committed (the ledger now answers for them)."""
        for key in keys:
            self.claimed.pop(key, None)

    def items(self) -> Iterator[RenderedItem]:
        """Every item to send, each block looked up in the ledger as it is reached."""
        while (block := self.next_block()) is not None:
            yield from block

    def chunks(self, size: int) -> Iterator[list[RenderedItem]]:
        """The items to send in lists of ``size`` (the last one shorter)."""
        chunk: list[RenderedItem] = []
        for rendered in self.items():
            chunk.append(rendered)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def commit_group(concurrency: int, chunk_size: int) -> int:
    """The most rows per ledger transaction: a sixteenth of the window (never above
    ``chunk_size``); a group is committed sooner when the loop has nothing else ready."""
    return max(1, min(chunk_size, concurrency // 16))


class _Sender:
    """Sends one job's items one request each; commits their rows in groups."""

    def __init__(
        self,
        job: Job,
        state: State,
        client: AsyncAgentFlow,
        counts: RunCounts,
        selector: Selector,
        run_id: str | None,
        on_chunk: Callable[[int, int], None] | None,
    ) -> None:
        self.job, self.client, self.counts, self.selector = job, client, counts, selector
        self.ledger = Ledger(state)
        self.run_id, self.on_chunk = run_id, on_chunk
        self.group = commit_group(job.spec.execution.concurrency, job.spec.execution.chunk_size)
        self.fields = job.send_fields()
        self.received: list[tuple[RenderedItem, ResultRow]] = []
        self.failure: list[BaseException] = []
        self._flush: asyncio.Handle | None = None
        self._committed: asyncio.Future[None] | None = None  # the pending group's commit
        self._settled = False  # frozen out of the collector (see flush)
        self.answered = asyncio.Event()  # a first request came back (the workers' ramp ends)

    async def send(self, rendered: RenderedItem) -> None:
        """One item's request; returns once its row is committed (or the request failed)."""
        job = self.job
        try:
            result = await self.client.completions.run(
                [rendered.item or {}], job.spec.model, operation=job.operation.kind, **self.fields
            )
        except Exception as exc:  # the whole request failed: stop taking new work
            self.failure.append(exc)
            self.selector.release([rendered.key or ""])
            return
        finally:
            self.answered.set()
        self.received.append((rendered, result.results[0]))
        if len(self.received) >= self.group:
            self.flush()
            return
        if self._committed is None:
            # after the callbacks ready now: the other replies of this turn join the group
            loop = asyncio.get_running_loop()
            self._flush = loop.call_soon(self.flush)
            self._committed = loop.create_future()
        await self._committed

    def flush(self) -> None:
        """Commit the rows received so far in one transaction; their workers go on."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        group, self.received = self.received, []
        committed, self._committed = self._committed, None
        if not self._settled:
            # the first answers: what the run holds from now to its end (items read, the
            # price table, connections) leaves the collector's walks; apply unfreezes it
            self._settled = True
            gc.freeze()
        try:
            if group:
                self._commit(group)
        finally:
            if committed is not None and not committed.done():
                committed.set_result(None)

    def _commit(self, group: list[tuple[RenderedItem, ResultRow]]) -> None:
        try:
            crash_point("before_ledger_commit")
            triples = [(r.key or "", r.index, row) for r, row in group]
            self.ledger.commit(self.job.name, "sync", triples, run_id=self.run_id)
            crash_point("after_ledger_commit")
            self._keep_entries(triples)
            done, failed = self.counts.add_rows([row for _, row in group], reached=True)
            if self.on_chunk:
                self.on_chunk(done, failed)
        except Exception as exc:  # the ledger refused: stop taking new work
            self.failure.append(exc)
        finally:
            self.selector.release([r.key or "" for r, _ in group])

    def _keep_entries(self, triples: list[tuple[str, int, ResultRow]]) -> None:
        """Hand the output the entries just recorded for keys new to the ledger."""
        claimed, counts = self.selector.claimed, self.counts
        for key, index, row in triples:
            if counts.entries is None:
                return
            if claimed.get(key):
                counts.keep_entry(key, first_entry(index, row, "sync", self.run_id))


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
    budget: Budget | None = None,
    on_sending: Callable[[], None] | None = None,
) -> None:
    """Send every selected item, counting into ``counts``, until ``stop`` or the ``budget``;
    ``on_sending`` runs once every worker has sent its first request (see ``Progress.sending``)."""
    sender = _Sender(job, state, client, counts, selector, run_id, on_chunk)
    items = selector.items()

    def take() -> RenderedItem | None:
        """The next item to send; None once there is none or nothing more may start."""
        if stop.is_set() or sender.failure or (budget and budget.reached(counts)):
            return None
        try:
            return next(items, None)
        except Exception as exc:  # the input could not be read: stop, keep what is in flight
            sender.failure.append(exc)
            return None

    async def worker() -> None:
        while (rendered := take()) is not None:
            await sender.send(rendered)

    tasks = await _start_in_waves(worker, job.spec.execution.concurrency, sender.answered)
    if on_sending is not None:  # after what the last wave's requests set going
        asyncio.get_running_loop().call_soon(on_sending)
    # results that arrive after a stop are still kept: each worker finishes its item
    await asyncio.gather(*tasks)
    sender.flush()
    if sender.failure:
        raise sender.failure[0]


async def _start_in_waves(
    worker: Callable[[], Awaitable[None]], count: int, answered: asyncio.Event
) -> list[asyncio.Task[None]]:
    """``count`` worker tasks, started in ``WAVES`` waves spread over ``SPREAD_PER_WORKER``
    a worker (128 ms for 256), or until the first answer (``answered``): the rest then
    start at once, a turn of the loop apart.

    Started at once, every worker builds its first request before any connection is
    made, so the first request leaves only when all of them are built (~0.1 s for 256);
    a turn of the loop apart, the first wave still waited behind the building of the
    next ones. And answers that come back together, round after round from a provider
    with a steady latency, each wait their turn on the event loop behind the others.
    Spread over the first answer's wait, the first request leaves ~30 ms sooner and the
    answers come back spread out (bench ``e2e``, 14 alternating runs against waves a
    turn apart: +0.0015 of the ideal on average, ahead in 8, behind in 4). The provider
    sees no burst of 256 requests in a millisecond either: rate limits are often
    enforced per second or less.
    """
    tasks: list[asyncio.Task[None]] = []
    size = max(1, -(-count // WAVES))
    pause = SPREAD_PER_WORKER * size
    try:
        while len(tasks) < count:
            tasks += [asyncio.ensure_future(worker()) for _ in range(min(size, count - len(tasks)))]
            if answered.is_set() or len(tasks) == count:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), pause)
    except BaseException:  # cancelled while starting: the started ones go with it
        for task in tasks:
            task.cancel()
        raise
    return tasks


async def wait_or_stop(stop: threading.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, waking early when ``stop`` is set."""
    deadline = asyncio.get_running_loop().time() + seconds
    with contextlib.suppress(asyncio.CancelledError):
        while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(min(0.05, seconds))
