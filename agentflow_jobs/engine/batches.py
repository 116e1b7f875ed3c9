"""Durable batches: submit, page, export and cancel, with workers that finish the work.

Workers claim unfinished batches from the store, send only the items that have no row
yet through the executor, and record rows in small groups as they finish. Stopping a
worker (shutdown, ``kill -9``) loses at most the rows still in flight (rows are
group-committed as soon as the event loop is free); the next process on the same store
claims the batch and sends only those.

With a profile's ``provider.batch: native`` the workers hand each batch to the
native strategy instead (``native.py``: the provider's own batch API at its batch
price); the rest of this service, the SDK and the runner are the same.

Request bodies and uploads are validated in ``requests.py``; exports are written by
``export.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import time
from collections import Counter
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agentflow_jobs.engine.export import export_chunks
from agentflow_jobs.engine.requests import parse_request
from agentflow_jobs.engine.spend import Spend
from agentflow_jobs.engine.store import BatchStore
from agentflow_jobs.engine.store_pg import open_store
from agentflow_jobs.errors import status_error
from agentflow_jobs.hashing import content_hash
from agentflow_jobs.operations import get_operation
from agentflow_jobs.wire import (
    Batch,
    CompletionRequest,
    CompletionResult,
    OutputPage,
    ProviderBatch,
    ResultRow,
    RowError,
)

if TYPE_CHECKING:
    from agentflow_jobs.engine.native import NativeBatches

__all__ = ["MAX_PAGE_SIZE", "BatchService", "RowSource", "open_service"]

MAX_PAGE_SIZE = 10_000
# batches worked at once with provider.batch: native (each mostly a poll now and then)
NATIVE_ACTIVE = 256


class RowSource(Protocol):
    """What the workers need from the executor."""

    def stream(
        self, request: CompletionRequest, *, indices: Sequence[int] | None = None
    ) -> AsyncGenerator[ResultRow, None]: ...

    async def complete(self, request: CompletionRequest) -> CompletionResult: ...

    async def aclose(self) -> None: ...


class BatchService:
    """Batches over one store; ``start()`` runs workers in the current event loop."""

    def __init__(
        self,
        store: BatchStore,
        executor: RowSource,
        *,
        default_model: str | None = None,
        max_active: int = 4,
        flush_rows: int = 50,
        flush_interval: float = 0.1,
        native: NativeBatches | None = None,
    ) -> None:
        self.store = store
        self.native = native
        self.executor = executor
        self.default_model = default_model
        self.max_active = max_active
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval
        self.rows_processed: Counter[str] = Counter()
        self.row_errors: Counter[str] = Counter()
        self.spend = Spend()
        self._spenders: dict[str, tuple[str, str | None]] = {}  # batch id -> tenant, model
        self._active: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    # -- requests -----------------------------------------------------------------

    async def complete(self, request: CompletionRequest, *, owner: str = "local") -> CompletionResult:
        result = await self.executor.complete(request)
        for row in result.results:
            self._count(row.get("status", "failed"), row.get("error"))
        self.spend.add(owner, result.model, result.results)
        return result

    def submit(
        self, owner: str, request: CompletionRequest, *, idempotency_key: str | None = None
    ) -> tuple[Batch, bool]:
        """Create a batch (or return the one an idempotency key already made)."""
        # a request its operation cannot prepare would only fail later, as the whole batch
        get_operation(request.operation).prepare(request)
        body = request.model_dump(exclude={"items", "metadata"}, exclude_none=True)
        idem = None
        if idempotency_key:
            idem = (idempotency_key, content_hash(request.model_dump(exclude_none=True)))
        try:
            batch_id, created = self.store.create(
                owner=owner,
                request=body,
                items=request.items,
                model=request.model or self.default_model,
                metadata=dict(request.metadata or {}),
                idempotency=idem,
            )
        except ValueError:
            raise status_error(
                409, f"idempotency key {idempotency_key!r} was already used with a different body"
            ) from None
        self._wake.set()
        return self.retrieve(owner, batch_id), created

    def retrieve(self, owner: str, batch_id: str) -> Batch:
        batch = self.store.get(batch_id, owner)
        if batch is None:
            raise status_error(404, f"no batch {batch_id!r}")
        if self.native is not None:
            chunks = self.native.records.chunks(batch_id)
            batch.provider_batches = [ProviderBatch.model_validate(c.describe()) for c in chunks
                                      if c.state not in ("intent", "abandoned")]
            # answers the provider reports (request_counts) for batches still running there
            batch.progress.completed += sum(c.succeeded for c in chunks
                                            if c.state == "created" and c.phase != "ended")
        return batch

    def list(self, owner: str, limit: int = 20) -> builtins.list[Batch]:
        return self.store.list(owner, max(0, min(limit, 1000)))

    async def cancel(self, owner: str, batch_id: str) -> Batch:
        """Stop a batch, keeping the rows that already finished."""
        batch = self.retrieve(owner, batch_id)
        if batch.is_terminal or self.store.set_status(batch_id, "cancelled", only_from=("queued",)):
            return self.retrieve(owner, batch_id)
        self.store.set_status(batch_id, "cancelling", only_from=("running",))
        if self.native is not None:  # it cancels the provider batches and keeps their answers
            self.native.poke(batch_id)
            self._wake.set()
            return self.retrieve(owner, batch_id)
        task = self._active.get(batch_id)
        if task is not None:
            self._cancelling.add(batch_id)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=5.0)
        elif self.store.claim_if_free(batch_id):
            self._finish_cancelled(batch_id)
        return self.retrieve(owner, batch_id)

    def output_page(self, owner: str, batch_id: str, offset: int, limit: int) -> OutputPage:
        batch = self.retrieve(owner, batch_id)
        limit = max(0, min(limit, MAX_PAGE_SIZE))
        rows = self.store.results(batch_id, max(0, offset), limit) if limit else []
        return OutputPage(
            id=batch_id,
            status=batch.status,
            offset=offset,
            limit=limit,
            total=self.store.count_results(batch_id),
            results=rows,
        )

    def export(self, owner: str, batch_id: str, fmt: str) -> Iterator[str]:
        """The whole output as text chunks, read from the store a slice at a time."""
        self.retrieve(owner, batch_id)
        return export_chunks(self.store, batch_id, fmt)

    # -- workers ------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming work in the running event loop (resumes unfinished batches)."""
        if self._dispatcher is None:
            self._wake = asyncio.Event()
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    async def stop(self) -> None:
        """Stop workers; unfinished items stay queued for the next start."""
        tasks = [t for t in (self._dispatcher, *self._active.values()) if t is not None]
        self._dispatcher = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.stop()
        await self.executor.aclose()
        if self.native is not None:
            await self.native.api.aclose()
        self.store.close()

    async def _dispatch(self) -> None:
        renewed = time.monotonic()
        while True:
            while len(self._active) < self.max_active:
                batch_id = self.store.claim(exclude=list(self._active))
                if batch_id is None:
                    break
                task = asyncio.get_running_loop().create_task(self._work(batch_id))
                self._active[batch_id] = task
                task.add_done_callback(functools.partial(self._done, batch_id))
            if time.monotonic() - renewed > 10:
                for lost in self.store.renew(list(self._active)):
                    self._active[lost].cancel()  # its lease ran out and another worker took it
                renewed = time.monotonic()
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow the cancel of
            # stop() when it lands as the timeout fires, and the dispatcher never ends
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()

    def _done(self, batch_id: str, _task: object = None) -> None:
        self._active.pop(batch_id, None)
        self._wake.set()

    async def _work(self, batch_id: str) -> None:
        buffer: builtins.list[ResultRow] = []
        flusher = asyncio.get_running_loop().create_task(self._flush_often(batch_id, buffer))
        try:
            await self._run(batch_id, buffer)
        except asyncio.CancelledError:
            self._flush(batch_id, buffer)
            if batch_id in self._cancelling:
                self._finish_cancelled(batch_id)
            else:
                self.store.release(batch_id)
            raise
        except Exception as exc:  # a request that cannot run at all fails its batch
            self._flush(batch_id, buffer)
            code = str(getattr(exc, "code", "engine_error"))
            self.store.fail(batch_id, RowError(code=code, message=str(exc) or type(exc).__name__))
        finally:
            flusher.cancel()
            self._cancelling.discard(batch_id)
            self._spenders.pop(batch_id, None)

    async def _run(self, batch_id: str, buffer: builtins.list[ResultRow]) -> None:
        if self.native is not None:
            await self._run_native(self.native, batch_id)
            return
        batch = self.store.get(batch_id)
        if batch is not None and batch.status == "cancelling":
            self._finish_cancelled(batch_id)
            return
        indices, items = self.store.pending_items(batch_id)
        if items:
            request = parse_request({**self.store.request(batch_id), "items": items})
            # Group commit: a row is committed as soon as the loop is free, together with
            # the rows that finished in the same moment, so a kill loses only rows in flight.
            loop = asyncio.get_running_loop()
            async with contextlib.aclosing(self.executor.stream(request, indices=indices)) as rows:
                async for row in rows:
                    buffer.append(row)
                    if len(buffer) >= self.flush_rows:
                        self._flush(batch_id, buffer)
                    elif len(buffer) == 1:
                        loop.call_soon(self._flush, batch_id, buffer)
        self._flush(batch_id, buffer)
        if not self.store.set_status(batch_id, "completed", only_from=("running",)):
            self._finish_cancelled(batch_id)

    async def _run_native(self, native: NativeBatches, batch_id: str) -> None:
        status, error = await native.run(batch_id, functools.partial(self._flush, batch_id))
        if error is not None:
            self.store.fail(batch_id, error)
        elif status == "completed" and self.store.set_status(batch_id, "completed", only_from=("running",)):
            return
        else:
            self._finish_cancelled(batch_id)

    async def _flush_often(self, batch_id: str, buffer: builtins.list[ResultRow]) -> None:
        checked = time.monotonic()
        while True:
            await asyncio.sleep(self.flush_interval)
            self._flush(batch_id, buffer)
            if time.monotonic() - checked > 0.5:
                # a cancel may come from another process sharing the store
                checked = time.monotonic()
                batch = self.store.get(batch_id)
                if batch is not None and batch.status == "cancelling" and self.native is not None:
                    self.native.poke(batch_id)
                elif batch is not None and batch.status == "cancelling":
                    self._cancelling.add(batch_id)
                    self._active[batch_id].cancel()

    def _flush(self, batch_id: str, buffer: builtins.list[ResultRow]) -> None:
        if buffer:
            rows = list(buffer)
            buffer.clear()
            self.store.record(batch_id, rows)
            for row in rows:
                self._count(row["status"], row["error"])
            if batch_id not in self._spenders:
                self._spenders[batch_id] = self.store.spender(batch_id)
            self.spend.add(*self._spenders[batch_id], rows)

    def _count(self, status: str, error: Mapping[str, Any] | None) -> None:
        self.rows_processed[status] += 1
        if error:
            self.row_errors[str(error.get("code", "error"))] += 1

    def _finish_cancelled(self, batch_id: str) -> None:
        self.store.set_status(batch_id, "cancelled")  # from any unfinished status


def open_service(
    provider_config: Mapping[str, Any], store_path: str | Path, *, default_model: str | None = None
) -> BatchService:
    """Provider + executor + store, assembled the way both the SDK and the server run them."""
    from agentflow_jobs.engine.executor import Executor
    from agentflow_jobs.engine.native import NativeBatches
    from agentflow_jobs.pricing import price_lookup
    from agentflow_jobs.providers import batch_settings, build_batch_api, build_provider

    model = default_model or provider_config.get("model")
    executor = Executor(
        build_provider(provider_config),
        concurrency=int(provider_config.get("concurrency", 64)),
        max_attempts=int(provider_config.get("max_attempts", 3)),
        default_model=model,
        price=price_lookup(provider_config),
    )
    store = open_store(store_path)
    api = build_batch_api(provider_config)
    if api is None:
        return BatchService(store, executor, default_model=model)
    native = NativeBatches(api, batch_settings(provider_config), executor, store)
    # a native batch mostly waits on the provider: many at once, or the provider would
    # only see the first few of a job's chunks until those finished (up to 24 h each)
    return BatchService(store, executor, default_model=model, native=native, max_active=NATIVE_ACTIVE)
