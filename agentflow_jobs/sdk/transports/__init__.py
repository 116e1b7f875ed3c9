"""How a client reaches the engine: in-process (embedded) or over HTTP.

Both transports speak the same small async interface and raise the same exceptions for
the same situations (``NotFoundError`` for an unknown batch, ``UnprocessableEntityError``
naming the field of an invalid request, ...), so everything above them is shared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from agentflow_jobs.wire import Batch, CompletionResult, OutputPage

__all__ = ["Transport", "UploadForm"]

# operation, model, fields (operation-specific keyword arguments), metadata
UploadForm = dict[str, Any]


class Transport(Protocol):
    """The engine as the SDK sees it."""

    async def complete(self, payload: dict[str, Any]) -> CompletionResult: ...

    async def submit(self, payload: dict[str, Any], *, idempotency_key: str | None) -> Batch: ...

    async def upload(
        self, filename: str, data: bytes, form: UploadForm, *, idempotency_key: str | None
    ) -> Batch: ...

    async def retrieve(self, batch_id: str) -> Batch: ...

    async def list(self, limit: int) -> list[Batch]: ...

    async def cancel(self, batch_id: str) -> Batch: ...

    async def output(self, batch_id: str, offset: int, limit: int) -> OutputPage: ...

    def export(self, batch_id: str, fmt: str) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...
