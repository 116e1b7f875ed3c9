"""``client.batches``: asynchronous jobs that run in the background.

``AsyncBatches`` holds the behaviour (polling, paging, atomic downloads); ``Batches``
runs each call of it on the sync client's loop.
"""

from __future__ import annotations

import asyncio
import builtins
import codecs
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from agentflow_jobs.errors import APITimeoutError, InputError, OutputError, status_error
from agentflow_jobs.io import AtomicFile, extension_format, open_row_writer
from agentflow_jobs.sdk.completions import Items, request_payload
from agentflow_jobs.wire import Batch, OutputPage, ResultRow

if TYPE_CHECKING:
    from agentflow_jobs.sdk.client import AsyncAgentFlow, SyncBridge

__all__ = ["AsyncBatches", "Batches"]

TextFormat = Literal["jsonl", "csv"]
OutputFormat = Literal["json", "jsonl", "csv"]


def _next_offset(page: OutputPage, offset: int) -> int | None:
    """Where the next page starts, or None when ``page`` was the last one."""
    offset += len(page.results)
    return offset if page.results and offset < page.total else None


def _check_page_size(page_size: int) -> None:
    # checked before the first page: 0 would end at once and -1 would blame ``limit``
    if page_size < 1:
        raise status_error(422, "page_size: must be >= 1")


def _format_for(path: Path) -> OutputFormat:
    """The output format a file's extension names; jsonl for any other extension."""
    fmt = extension_format(path)
    return "csv" if fmt == "csv" else "json" if fmt == "json" else "jsonl"


class AsyncBatches:
    """Async ``client.batches``."""

    def __init__(self, client: AsyncAgentFlow) -> None:
        self._client = client

    async def submit(
        self,
        operation: str,
        items: Items,
        model: str | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
        **fields: Any,
    ) -> Batch:
        """Submit a batch; the same ``idempotency_key`` and body return the same batch."""
        payload = request_payload(operation, items, model, {**fields, "metadata": metadata})
        transport = await self._client._open()
        return await transport.submit(payload, idempotency_key=idempotency_key)

    async def submit_and_wait(
        self,
        operation: str,
        items: Items,
        model: str | None = None,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
        **fields: Any,
    ) -> Batch:
        """Submit, then poll until the batch completes, fails or is cancelled."""
        batch = await self.submit(
            operation, items, model, idempotency_key=idempotency_key, metadata=metadata, **fields
        )
        return await self.wait(batch.id, timeout=timeout, poll_interval=poll_interval)

    async def retrieve(self, batch_id: str) -> Batch:
        """The batch with its status and progress."""
        return await (await self._client._open()).retrieve(batch_id)

    async def wait(
        self, batch_id: str, timeout: float | None = None, poll_interval: float = 1.0
    ) -> Batch:
        """Poll until the batch is terminal; ``APITimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(0.05, poll_interval)  # short jobs finish fast: start polling quickly
        while True:
            batch = await self.retrieve(batch_id)
            if batch.is_terminal:
                return batch
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise APITimeoutError(
                    f"batch {batch_id} is still {batch.status} after {timeout} s "
                    f"({batch.progress.completed + batch.progress.failed}/{batch.total_items} done)"
                )
            await asyncio.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 2, poll_interval)

    @overload
    async def output(
        self, batch_id: str, format: Literal["json"] = ..., offset: int = ..., limit: int = ...
    ) -> OutputPage: ...

    @overload
    async def output(
        self, batch_id: str, format: TextFormat, offset: int = ..., limit: int = ...
    ) -> str: ...

    async def output(
        self, batch_id: str, format: str = "json", offset: int = 0, limit: int = 1000
    ) -> OutputPage | str:
        """One JSON page of rows (item order), or the whole ``jsonl``/``csv`` export as text."""
        transport = await self._client._open()
        if format == "json":
            return await transport.output(batch_id, offset, limit)
        chunks = [chunk async for chunk in transport.export(batch_id, format)]
        return b"".join(chunks).decode("utf-8")

    def iter_output(self, batch_id: str, page_size: int = 1000) -> AsyncIterator[ResultRow]:
        """Every output row in item order, fetching ``page_size`` rows at a time."""
        _check_page_size(page_size)
        return self._iter_output(batch_id, page_size)

    async def _iter_output(self, batch_id: str, page_size: int) -> AsyncIterator[ResultRow]:
        offset: int | None = 0
        while offset is not None:
            page = await self.output(batch_id, "json", offset, page_size)
            for row in page.results:
                yield row
            offset = _next_offset(page, offset)

    async def download_output(
        self, batch_id: str, path: str | os.PathLike[str], format: OutputFormat | None = None
    ) -> Path:
        """Stream the output to ``path`` (format from its extension unless given), atomically."""
        target = Path(path)
        try:
            # the caller's folder must exist: a typo in it should not become new folders
            with AtomicFile(target, make_parents=False) as out:
                await self._write_output(batch_id, format or _format_for(target), out.handle)
        except OSError as exc:
            # name the file the caller gave, not our temporary sibling of it
            raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(path)) from None
        return target

    async def _write_output(self, batch_id: str, format: OutputFormat, out: IO[str]) -> None:
        if format == "json":  # the export route answers json with pages: write them as one array
            writer = open_row_writer(out, "json")
            async for row in self.iter_output(batch_id):
                writer.write(row)
            writer.close()
            return
        decoder = codecs.getincrementaldecoder("utf-8")()
        async for chunk in (await self._client._open()).export(batch_id, format):
            out.write(decoder.decode(chunk))
        out.write(decoder.decode(b"", final=True))

    async def upload_file(
        self,
        path: str | os.PathLike[str],
        operation: str,
        model: str | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
        **fields: Any,
    ) -> Batch:
        """Create a batch from a ``.jsonl``, ``.csv``, ``.json`` or ``.txt`` file of items."""
        source = Path(path)
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror}", path=str(source)) from None
        form = {"operation": operation, "model": model, "fields": fields, "metadata": metadata}
        transport = await self._client._open()
        return await transport.upload(source.name, data, form, idempotency_key=idempotency_key)

    async def cancel(self, batch_id: str) -> Batch:
        """Cancel queued or running work; rows that already finished are kept."""
        return await (await self._client._open()).cancel(batch_id)

    async def list(self, limit: int = 20) -> builtins.list[Batch]:
        """The most recent batches first."""
        return await (await self._client._open()).list(limit)


class Batches:
    """Sync ``client.batches``: each call runs the async twin on the client's loop."""

    def __init__(self, bridge: SyncBridge, core: AsyncBatches) -> None:
        self._bridge = bridge
        self._core = core

    def submit(
        self,
        operation: str,
        items: Items,
        model: str | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
        **fields: Any,
    ) -> Batch:
        """Submit a batch; the same ``idempotency_key`` and body return the same batch."""
        return self._bridge.run(self._core.submit(
            operation, items, model, idempotency_key=idempotency_key, metadata=metadata, **fields
        ))

    def submit_and_wait(
        self,
        operation: str,
        items: Items,
        model: str | None = None,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
        **fields: Any,
    ) -> Batch:
        """Submit, then poll until the batch completes, fails or is cancelled."""
        return self._bridge.run(self._core.submit_and_wait(
            operation, items, model, timeout=timeout, poll_interval=poll_interval,
            idempotency_key=idempotency_key, metadata=metadata, **fields,
        ))

    def retrieve(self, batch_id: str) -> Batch:
        """The batch with its status and progress."""
        return self._bridge.run(self._core.retrieve(batch_id))

    def wait(self, batch_id: str, timeout: float | None = None, poll_interval: float = 1.0) -> Batch:
        """Poll until the batch is terminal; ``APITimeoutError`` after ``timeout`` seconds."""
        return self._bridge.run(self._core.wait(batch_id, timeout, poll_interval))

    @overload
    def output(
        self, batch_id: str, format: Literal["json"] = ..., offset: int = ..., limit: int = ...
    ) -> OutputPage: ...

    @overload
    def output(self, batch_id: str, format: TextFormat, offset: int = ..., limit: int = ...) -> str: ...

    def output(
        self, batch_id: str, format: str = "json", offset: int = 0, limit: int = 1000
    ) -> OutputPage | str:
        """One JSON page of rows (item order), or the whole ``jsonl``/``csv`` export as text."""
        return self._bridge.run(self._core.output(batch_id, format, offset, limit))  # type: ignore[call-overload, no-any-return]

    def iter_output(self, batch_id: str, page_size: int = 1000) -> Iterator[ResultRow]:
        """Every output row in item order, fetching ``page_size`` rows at a time."""
        _check_page_size(page_size)
        return self._iter_output(batch_id, page_size)

    def _iter_output(self, batch_id: str, page_size: int) -> Iterator[ResultRow]:
        offset: int | None = 0
        while offset is not None:
            page = self.output(batch_id, "json", offset, page_size)
            yield from page.results
            offset = _next_offset(page, offset)

    def download_output(
        self, batch_id: str, path: str | os.PathLike[str], format: OutputFormat | None = None
    ) -> Path:
        """Stream the output to ``path`` (format from its extension unless given), atomically."""
        return self._bridge.run(self._core.download_output(batch_id, path, format))

    def upload_file(
        self,
        path: str | os.PathLike[str],
        operation: str,
        model: str | None = None,
        *,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
        **fields: Any,
    ) -> Batch:
        """Create a batch from a ``.jsonl``, ``.csv``, ``.json`` or ``.txt`` file of items."""
        return self._bridge.run(self._core.upload_file(
            path, operation, model, idempotency_key=idempotency_key, metadata=metadata, **fields
        ))

    def cancel(self, batch_id: str) -> Batch:
        """Cancel queued or running work; rows that already finished are kept."""
        return self._bridge.run(self._core.cancel(batch_id))

    def list(self, limit: int = 20) -> builtins.list[Batch]:
        """The most recent batches first."""
        return self._bridge.run(self._core.list(limit))
