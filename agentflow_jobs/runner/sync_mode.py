"""Sync mode: items flow in chunks to ``client.completions.*``, several in flight.

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
from dataclasses import dataclass
from typing import Any

import structlog

from agentflow_jobs.runner.crash import crash_point
from agentflow_jobs.runner.job import Job, RenderedItem
from agentflow_jobs.runner.ledger import Ledger, is_retryable, provider_requests
from agentflow_jobs.runner.plan import blocks
from agentflow_jobs.runner.state import State

__all__ = ["Selector", "SyncCounts", "request_shape", "run_sync"]

log = structlog.get_logger()
_METHODS = {
    "label": "classify",
    "extract": "extract",
    "summarize": "summarize",
    "enrich": "enrich",
    "run": "run",
}


@dataclass
class SyncCounts:
    """What one sync execution sent and got back."""

    sent: int = 0  # items that reached the provider
    completed: int = 0
    failed: int = 0
    retryable: int = 0  # of the failed: the provider never answered
    requests: int = 0  # provider requests, re-asks and retries included


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
        self._items = blocks(iter(items) if items is not None else job.items())
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


async def run_sync(
    job: Job,
    state: State,
    client: Any,
    *,
    selector: Selector,
    stop: threading.Event,
    run_id: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> SyncCounts:
    """Send every selected item; stop dispatching when ``stop`` is set."""
    counts = SyncCounts()
    ledger = Ledger(state)
    size, window = request_shape(job.concurrency, job.chunk_size)
    slots = asyncio.Semaphore(window)
    tasks: set[asyncio.Task[None]] = set()
    method = getattr(client.completions, _METHODS[job.operation])
    kwargs = job.request_kwargs()
    failure: list[BaseException] = []

    async def send(chunk: list[RenderedItem]) -> None:
        try:
            result = await method(items=[r.item for r in chunk], model=job.model, **kwargs)
            rows = list(result.results)
            crash_point("before_ledger_commit")
            triples = [(r.key or "", r.index, row) for r, row in zip(chunk, rows, strict=True)]
            ledger.commit(job.name, "sync", triples, run_id=run_id)
            crash_point("after_ledger_commit")
            done = sum(row.get("status") == "completed" for row in rows)
            counts.completed += done
            counts.failed += len(rows) - done
            counts.retryable += sum(is_retryable(row) for row in rows)
            requests = [provider_requests(row) for row in rows]
            counts.sent += sum(n > 0 for n in requests)
            counts.requests += sum(requests)
            if on_chunk:
                on_chunk(done, len(rows) - done)
        except Exception as exc:  # the whole request failed: stop taking new work
            failure.append(exc)
        finally:
            selector.release([r.key or "" for r in chunk])
            slots.release()

    for chunk in selector.chunks(size):
        await slots.acquire()
        if stop.is_set() or failure:
            slots.release()
            break
        task = asyncio.create_task(send(chunk))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        # results that arrive after a stop are still kept
        await asyncio.gather(*list(tasks), return_exceptions=True)
    if failure:
        raise failure[0]
    return counts


async def wait_or_stop(stop: threading.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, waking early when ``stop`` is set."""
    deadline = asyncio.get_running_loop().time() + seconds
    with contextlib.suppress(asyncio.CancelledError):
        while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(min(0.05, seconds))
