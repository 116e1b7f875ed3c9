"""The seam for provider-native batch APIs (OpenAI's Batch API, Anthropic's Message Batches).

A ``BatchAPI`` only speaks its provider's batch protocol over HTTP: it encodes request
lines, uploads and creates a batch, finds one again by its metadata, reads the batch
object's state, streams result lines and cancels. It records nothing: durability (intent
→ upload id → provider batch id recorded before any wait, leases, harvest, re-ask) is
the engine's native strategy's (``engine/native.py``), the same for every provider.

Operations build each item's ``ChatRequest`` exactly as in sync mode, so a line's body is
the body the provider's chat endpoint would have been sent, and each ``LineOutcome``
carries a ``ChatReply`` the operation parses like a sync reply.

A line's ``custom_id`` is chosen by the engine (stable, unique in the batch,
``^[A-Za-z0-9_-]{1,64}$``); a ``BatchAPI`` must hand it back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from agentflow_jobs.chat import ChatReply, ChatRequest

__all__ = [
    "BatchAPI",
    "BatchLimits",
    "BatchLine",
    "BatchPhase",
    "LineOutcome",
    "RemoteBatch",
    "json_line",
]

# Where a provider batch is, in the engine's words (each provider maps its own statuses):
# ``pending`` (accepted, validating or queued), ``running``, ``ending`` (finalizing,
# cancelling: results still to come), ``ended`` (completed, expired, cancelled or failed:
# every result it will ever have can be read now).
BatchPhase = Literal["pending", "running", "ending", "ended"]


@dataclass(frozen=True)
class BatchLimits:
    """How much one provider batch may hold; larger chunks are split."""

    max_requests: int
    max_bytes: int


@dataclass(frozen=True)
class BatchLine:
    """One request of a provider batch: the item's key and the chat request to send."""

    custom_id: str
    chat: ChatRequest


@dataclass(frozen=True)
class RemoteBatch:
    """A provider batch as last read: its id, state, counts and expiry."""

    id: str
    phase: BatchPhase
    status: str  # the provider's own word (``in_progress``, ``ended``, ...), for status output
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    # epoch seconds: when the provider expires the batch (OpenAI) or drops its results
    # (Anthropic's results retention); None when it does not say
    expires_at: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # whatever the provider needs to read results and clean up (file ids, results_url)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LineOutcome:
    """One result line.

    ``reply`` is set for an answered line (paid: its usage counts). Otherwise ``code`` and
    ``message`` say why, and ``paid`` whether the provider billed it anyway; an unpaid
    failure (expired, cancelled, an errored line the provider did not bill) leaves the
    item unanswered, to be sent again later, never recorded as a failed row.
    """

    custom_id: str
    reply: ChatReply | None = None
    code: str | None = None
    message: str | None = None
    paid: bool = False


@runtime_checkable
class BatchAPI(Protocol):
    """One provider's batch protocol (see the module doc); errors are ``ProviderError``."""

    name: str
    limits: BatchLimits

    def line_bytes(self, line: BatchLine) -> int:
        """The encoded size of ``line`` in the upload, to split by ``limits.max_bytes``."""
        ...

    async def upload(self, lines: Sequence[BatchLine]) -> str | None:
        """Upload the lines and return the upload's id (OpenAI's input file id), or None
        for a provider whose ``create`` carries the lines itself (Anthropic)."""
        ...

    async def create(
        self, lines: Sequence[BatchLine], upload_id: str | None, metadata: Mapping[str, str]
    ) -> RemoteBatch:
        """Create the provider batch from ``upload_id`` (or ``lines``), tagged ``metadata``."""
        ...

    async def find(
        self, metadata: Mapping[str, str], taken: Callable[[str], bool] | None = None
    ) -> RemoteBatch | None:
        """The provider batch created with exactly ``metadata``, if there is one: how a
        batch created just before a crash, before its id was recorded, is found again.
        ``taken(id)`` says a provider batch is recorded for another chunk already (a
        provider whose batches carry no metadata must never take one of those)."""
        ...

    async def retrieve(self, batch_id: str) -> RemoteBatch:
        """The batch as it is now."""
        ...

    def results(self, batch: RemoteBatch) -> AsyncIterator[LineOutcome]:
        """Every result line the batch has (output and error lines, in any order)."""
        ...

    async def cancel(self, batch_id: str) -> RemoteBatch:
        """Ask the provider to stop the batch; what it answered stays readable."""
        ...

    async def discard(self, batch: RemoteBatch, upload_id: str | None) -> None:
        """Delete the uploaded and result files after a harvest (a no-op where none exist)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def json_line(text: str) -> dict[str, Any] | None:
    """One result line as a JSON object, or None for a blank or unreadable line."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
