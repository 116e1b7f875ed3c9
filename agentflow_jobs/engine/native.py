"""The ``native`` batch strategy: an AgentFlow batch run through the provider's batch API.

A profile's ``provider.batch: native`` picks it; the SDK and the runner do not know.
The AgentFlow batch's pending items are cut into *chunks* by the provider's limits
(``BatchLimits``: requests and bytes per batch), one provider batch each. Every step of
a chunk is committed (``native_records``) before the next one starts:

1. **intent**: indices and an idempotency key (in the batch's metadata) are recorded;
2. **upload**: the lines (each the very body sync mode sends, ``custom_id``
   ``item-<index>``) are uploaded; the upload id is recorded;
3. **create**: when a create may already have happened (a crash after it, a failed
   call), the batch is looked for by its metadata first (``BatchAPI.find``); then created;
   the provider batch id is recorded before any wait. A chunk never gets two provider
   batches (invariant 8);
4. **poll**: with backoff and jitter (``batch_poll_interval`` growing to
   ``batch_poll_max``), honouring Retry-After (each call's retries, and the next look);
   status and counts are recorded as they change;
5. **harvest**: once the batch has ended (completed, expired, cancelled, failed), every
   output and error line, in any order, is judged like a sync reply (``native_rows``) and
   recorded as a row keyed by ``(batch_id, index)``: a crash mid-harvest reads the file
   again and skips the items that have rows. Invalid answers are asked again once, in a
   follow-up ``reask`` chunk recorded in the same transaction that marks this one
   harvested (or synchronously with ``batch_reask: sync``);
6. **discard**: the uploaded and result files are deleted (``keep_batch_files: true``
   keeps them).

Items a provider batch did not answer (expired, cancelled, unpaid errors) get no row:
the AgentFlow batch ends ``failed`` with code ``unanswered`` and the runner's next apply
sends them again; answered ones never. Cancelling the AgentFlow batch cancels its
provider batches and keeps what they returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

import structlog

from agentflow_jobs.crash import crash_point
from agentflow_jobs.engine.executor import Executor
from agentflow_jobs.engine.native_records import OPEN_STATES, Chunk, NativeRecords
from agentflow_jobs.engine.native_rows import Judge, Verdict, chat_from_json, custom_id, index_of
from agentflow_jobs.engine.requests import parse_request
from agentflow_jobs.engine.store import BatchStore
from agentflow_jobs.errors import OperationInputError, ProviderError
from agentflow_jobs.hashing import content_hash
from agentflow_jobs.providers import BatchSettings
from agentflow_jobs.providers.batch_api import BatchAPI, BatchLine, RemoteBatch
from agentflow_jobs.wire import ResultRow, RowError, Usage

__all__ = ["NativeBatches", "Outcome"]

log = structlog.get_logger(__name__)
Record = Callable[[list[ResultRow]], None]
# an AgentFlow batch ends: (status, error)
Outcome = tuple[str, RowError | None]
_GROUP = 200  # rows recorded per transaction while harvesting


class NativeBatches:
    """Runs AgentFlow batches through one provider's ``BatchAPI`` (see the module doc)."""

    def __init__(self, api: BatchAPI, settings: BatchSettings, executor: Executor, store: BatchStore) -> None:
        self.api, self.settings, self.executor, self.store = api, settings, executor, store
        self.records = NativeRecords(store)
        self._wakes: dict[str, asyncio.Event] = {}
        # chunks uploaded by this process just now: no create can have happened for them
        self._fresh: set[tuple[str, int]] = set()
        # batch id -> the Retry-After of its last failed call: the next wait is no shorter
        self._pauses: dict[str, float] = {}

    def poke(self, batch_id: str) -> None:
        """Cut the current poll wait short (a cancel came)."""
        event = self._wakes.get(batch_id)
        if event is not None:
            event.set()

    async def run(self, batch_id: str, record: Record) -> Outcome:
        """Work the batch until every chunk is harvested; what it ended as."""
        judge = self._judge(batch_id)
        self._wakes[batch_id] = asyncio.Event()
        cancelled, waits = False, 0
        if not self._cancelling(batch_id):  # the items never change: cut them once per run
            self._plan(batch_id, judge, record)
        try:
            while True:
                if not cancelled and self._cancelling(batch_id):
                    cancelled = await self._cancel_all(batch_id)
                chunks = [c for c in self.records.chunks(batch_id) if c.state in OPEN_STATES]
                if not chunks:
                    return self._ending(batch_id, cancelled)
                settled = [await self._advance(judge, chunk, record) for chunk in chunks]
                if not all(settled):
                    waits += 1
                    await self._sleep(batch_id, waits)
                else:
                    waits = 0
        finally:
            self._wakes.pop(batch_id, None)

    # -- planning -------------------------------------------------------------------

    def _judge(self, batch_id: str) -> Judge:
        request = parse_request({**self.store.request(batch_id), "items": []})
        price = self.executor.price(self.executor.model_for(request)) if self.executor.price else None
        model = request.model or self.executor.default_model
        return Judge(self.executor.bind(request), model, price, request.id_field)

    def _plan(self, batch_id: str, judge: Judge, record: Record) -> None:
        """Intents for the pending items no chunk holds yet, cut by the provider's limits."""
        covered = {i for chunk in self.records.chunks(batch_id) for i in chunk.indices}
        indices, items = self.store.pending_items(batch_id)
        fresh = [(i, item) for i, item in zip(indices, items, strict=True) if i not in covered]
        if not fresh:
            return
        key = content_hash("native", batch_id, [i for i, _ in fresh])[:24]
        unsendable: list[ResultRow] = []
        part: list[int] = []
        size = 0
        for index, item in fresh:
            try:
                line = BatchLine(custom_id(index), judge.build(item))
            except OperationInputError as exc:
                unsendable.append(judge.failed(index, item, exc.code, exc.message, Usage(), 0.0))
                continue
            length = self.api.line_bytes(line)
            if part and (len(part) >= self.api.limits.max_requests or size + length > self.api.limits.max_bytes):
                self.records.add_intent(batch_id, "ask", key, part)
                part, size = [], 0
            part.append(index)
            size += length
        if part:
            self.records.add_intent(batch_id, "ask", key, part)
        record(unsendable)

    def _lines(self, judge: Judge, chunk: Chunk) -> list[BatchLine]:
        if chunk.kind == "reask":
            return [BatchLine(custom_id(int(i)), chat_from_json(line["chat"])) for i, line in chunk.lines.items()]
        items = self.records.items_at(chunk.batch_id, chunk.indices)
        return [BatchLine(custom_id(i), judge.build(items[i])) for i in chunk.indices]

    # -- one chunk, one step at a time ----------------------------------------------

    async def _advance(self, judge: Judge, chunk: Chunk, record: Record) -> bool:
        """Take the chunk as far as it goes now; True when nothing is left to wait for."""
        try:
            if chunk.state == "intent":
                await self._upload(judge, chunk)
            if chunk.state == "uploaded":
                await self._create(judge, chunk)
                return False
            if chunk.state == "created" and chunk.phase != "ended":
                self._seen(chunk, await self.api.retrieve(str(chunk.provider_id)))
                crash_point("native_polling")
            if chunk.state == "created" and chunk.phase == "ended":
                await self._harvest(judge, chunk, record)
            if chunk.state == "harvested":
                await self._discard(chunk)
        except ProviderError as exc:
            return self._failed_step(chunk, exc)
        return chunk.state not in OPEN_STATES

    def _failed_step(self, chunk: Chunk, error: ProviderError) -> bool:
        """After a failed call: fail the chunk only when nothing at the provider can be
        lost (not created yet, or gone: 404); else wait and try again, however long, since
        giving up on a created batch would have the next apply pay for its items twice."""
        gone = chunk.state in ("created", "harvested") and error.status_code == 404
        if (chunk.state == "intent" and not _transient(error)) or gone:
            self.records.set_state(chunk, "failed", str(error))
            log.error("provider batch step failed; its items are sent again by the next apply",
                      chunk=chunk.seq, provider_batch=chunk.provider_id, error=str(error))
            return True
        if error.retry_after:  # the next look waits at least what the provider asked for
            self._pauses[chunk.batch_id] = max(self._pauses.get(chunk.batch_id, 0.0), error.retry_after)
        if _transient(error):
            log.warning("provider batch API unavailable; trying again", chunk=chunk.seq, error=str(error))
        else:
            log.error("provider batch API refused a call; trying again (the provider batch keeps "
                      "running there)", chunk=chunk.seq, provider_batch=chunk.provider_id, error=str(error))
        return False

    async def _upload(self, judge: Judge, chunk: Chunk) -> None:
        upload_id = await self.api.upload(self._lines(judge, chunk))
        crash_point("native_after_upload")
        self.records.set_upload(chunk, upload_id)
        self._fresh.add((chunk.batch_id, chunk.seq))

    async def _create(self, judge: Judge, chunk: Chunk) -> None:
        fresh = (chunk.batch_id, chunk.seq) in self._fresh
        self._fresh.discard((chunk.batch_id, chunk.seq))
        found = None if fresh else await self.api.find(chunk.metadata, self.records.is_recorded)
        if found is not None:
            log.info("provider batch found again by its metadata", provider_batch=found.id, chunk=chunk.seq)
        else:
            try:
                found = await self.api.create(self._lines(judge, chunk), chunk.upload_id, chunk.metadata)
            except ProviderError as exc:
                if _transient(exc):
                    raise  # it may have been created: the next attempt looks for it first
                self.records.set_state(chunk, "failed", f"the provider refused the batch: {exc}")
                log.error("the provider refused the batch; its items are sent again by the next apply",
                          chunk=chunk.seq, error=str(exc))
                if not self.settings.keep_files:
                    with contextlib.suppress(ProviderError):  # an upload left behind is harmless
                        await self.api.discard(RemoteBatch("", "ended", "refused"), chunk.upload_id)
                return
            crash_point("native_after_create")
        self.records.set_remote(chunk, found)
        log.info("provider batch created", provider_batch=found.id, chunk=chunk.seq, items=len(chunk.indices))

    def _seen(self, chunk: Chunk, remote: RemoteBatch) -> None:
        if (remote.status, remote.succeeded, remote.failed) != (chunk.status, chunk.succeeded, chunk.failed):
            self.records.set_remote(chunk, remote)

    async def _harvest(self, judge: Judge, chunk: Chunk, record: Record) -> None:
        """Every result line recorded once; re-asks recorded with the chunk's end."""
        pending = set(self.store.pending_items(chunk.batch_id)[0]) & set(chunk.indices)
        items = self.records.items_at(chunk.batch_id, sorted(pending))
        rows: list[ResultRow] = []
        reasks: dict[str, Any] = {}
        async for outcome in self.api.results(chunk.remote()):
            index = index_of(outcome.custom_id)
            if index is None or index not in pending:
                continue  # not ours, or already recorded (a harvest read again)
            pending.discard(index)
            carried = chunk.lines[str(index)]["usage"] if chunk.kind == "reask" else None
            verdict = judge.line(index, items[index], outcome, carried)
            if verdict.reask is not None:
                reasks[str(index)] = verdict.reask
            if verdict.row is not None:
                rows.append(verdict.row)
            if len(rows) >= _GROUP:
                record(rows)
                rows = []
                crash_point("native_mid_harvest")
        record(rows)
        if reasks and self.settings.reask == "sync":
            record(await self._reask_sync(judge, items, reasks))
            reasks = {}
        self._ended(chunk, reasks)

    def _ended(self, chunk: Chunk, reasks: dict[str, Any]) -> None:
        if reasks:
            indices = [int(i) for i in reasks]
            self.records.add_intent(chunk.batch_id, "reask", chunk.key, indices, reasks, done_seq=chunk.seq)
            chunk.state = "harvested"
        else:
            self.records.set_state(chunk, "harvested")
        log.info("provider batch harvested", provider_batch=chunk.provider_id, status=chunk.status,
                 answered=chunk.succeeded, failed=chunk.failed, reasked=len(reasks))
        if chunk.status in ("failed", "expired", "cancelled"):
            log.warning("provider batch ended without answering every item; the next apply "
                        "sends the rest", provider_batch=chunk.provider_id, status=chunk.status,
                        reason=_reason(chunk))

    async def _reask_sync(self, judge: Judge, items: dict[int, dict[str, Any]],
                          reasks: dict[str, Any]) -> list[ResultRow]:
        rows: list[ResultRow] = []
        for key, line in reasks.items():
            index, tally = int(key), Usage()
            tally.include(line["usage"])
            try:
                reply = await self.executor.provider.chat(chat_from_json(line["chat"]))
            except ProviderError as exc:
                rows.append(judge.failed(index, items[index], exc.code, exc.message, tally, line["usage"].get("cost_usd")))
                continue
            verdict: Verdict = judge.answered(index, items[index], reply, tally, line["usage"].get("cost_usd"),
                                              reasked=True, batch=False)
            rows.extend([verdict.row] if verdict.row is not None else [])
        return rows

    async def _discard(self, chunk: Chunk) -> None:
        if not self.settings.keep_files:
            await self.api.discard(chunk.remote(), chunk.upload_id)
        self.records.set_state(chunk, "done")

    # -- cancel, waits, the end -----------------------------------------------------

    def _cancelling(self, batch_id: str) -> bool:
        batch = self.store.get(batch_id)
        return batch is not None and batch.status == "cancelling"

    async def _cancel_all(self, batch_id: str) -> bool:
        """Stop every provider batch of the batch (False: the API is unavailable, try again)."""
        try:
            await self._cancel_chunks(batch_id)
        except ProviderError as exc:  # never give up on a batch the provider still runs
            log.warning("provider batch API did not take the cancel; trying again", error=str(exc))
            return False
        return True

    async def _cancel_chunks(self, batch_id: str) -> None:
        """What the provider batches answered before they stopped is still harvested."""
        for chunk in self.records.chunks(batch_id):
            if chunk.state == "uploaded":
                found = await self.api.find(chunk.metadata, self.records.is_recorded)
                if found is None:
                    await self.api.discard(RemoteBatch("", "ended", "abandoned"), chunk.upload_id)
                    self.records.set_state(chunk, "abandoned")
                    continue
                self.records.set_remote(chunk, found)
            if chunk.state == "intent":
                self.records.set_state(chunk, "abandoned")
            elif chunk.state == "created" and chunk.phase != "ended":
                self._seen(chunk, await self.api.cancel(str(chunk.provider_id)))
                log.info("provider batch cancelled", provider_batch=chunk.provider_id)

    async def _sleep(self, batch_id: str, waits: int) -> None:
        """The poll wait: growing to ``poll_max``, jittered so many batches spread out."""
        step = min(self.settings.poll_max, self.settings.poll_interval * 1.5 ** (waits - 1))
        wait = max(random.uniform(step / 2, step), self._pauses.pop(batch_id, 0.0))
        event = self._wakes[batch_id]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=wait)
        event.clear()

    def _ending(self, batch_id: str, cancelled: bool) -> Outcome:
        missing = len(self.store.pending_items(batch_id)[0])
        if cancelled:
            return "cancelled", None
        if not missing:
            return "completed", None
        return "failed", RowError(code="unanswered", message=self._unanswered(batch_id, missing))

    def _unanswered(self, batch_id: str, missing: int) -> str:
        ends = sorted({f"{c.provider_id or 'chunk ' + str(c.seq)} {c.status or c.state}"
                       + (f" ({_reason(c)})" if _reason(c) else "")
                       for c in self.records.chunks(batch_id) if c.status not in ("completed", None) or c.error})
        said = "; ".join(ends[:5]) or "no answer for them in the provider's result files"
        return (f"{missing} item(s) got no answer from the provider's batch API ({said}); "
                "they are sent again by the next apply")

def _reason(chunk: Chunk) -> str:
    """Why a provider batch ended short: our error, else the provider's first errors."""
    if chunk.error:
        return chunk.error
    errors = chunk.raw.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    if isinstance(data, list) and data:
        return "; ".join(str(e.get("message") or e.get("code")) for e in data[:3] if isinstance(e, dict))
    return ""


def _transient(error: ProviderError) -> bool:
    """A control call that may work later (the provider keeps a batch 24 h): wait, never
    fail the batch for it. The API's own retries leave ``retryable`` False, hence the codes."""
    return error.retryable or error.code in ("rate_limited", "provider_error", "timeout")
