"""``client.completions``: synchronous operations that return their rows in the response.

``classify`` is the helper's name for the ``label`` operation; ``run(operation="name")``
is a custom run named ``name``. Operation fields are keyword arguments with the names of
the reference page (``categories``, ``extraction_instructions``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agentflow_jobs.errors import status_error
from agentflow_jobs.wire import CompletionResult

if TYPE_CHECKING:
    from agentflow_jobs.sdk.client import AsyncAgentFlow, SyncBridge

__all__ = ["AsyncCompletions", "Completions", "request_payload"]

Items = Iterable[dict[str, Any] | str]


def request_payload(
    operation: str, items: Items, model: str | None, fields: dict[str, Any]
) -> dict[str, Any]:
    """The request body; bare strings become ``{"content": ...}`` items."""
    if isinstance(items, str | bytes | Mapping):
        # iterating would send one item per character (or per key), each one paid for
        kind = type(items).__name__
        message = (f"items: expected a list of items (dicts or strings), got a {kind}; "
                   "wrap a single item in a list")
        raise status_error(422, message, body={"error": {"code": "validation_error", "message": message}})
    payload: dict[str, Any] = {
        "operation": operation,
        "items": [{"content": i} if isinstance(i, str) else i for i in items],
        **{k: v for k, v in fields.items() if v is not None},
    }
    if model is not None:
        payload["model"] = model
    return payload


class AsyncCompletions:
    """Async ``client.completions``."""

    def __init__(self, client: AsyncAgentFlow) -> None:
        self._client = client

    async def run(
        self, items: Items, model: str | None = None, *, operation: str = "run", **fields: Any
    ) -> CompletionResult:
        """Run any operation (a custom name makes a custom ``run``) over ``items``."""
        transport = await self._client._open()
        return await transport.complete(request_payload(operation, items, model, fields))

    async def classify(self, items: Items, model: str | None = None, **fields: Any) -> CompletionResult:
        """Label each item with one of ``categories``."""
        return await self.run(items, model, operation="label", **fields)

    async def extract(self, items: Items, model: str | None = None, **fields: Any) -> CompletionResult:
        """Extract a JSON object per item following ``extraction_instructions``."""
        return await self.run(items, model, operation="extract", **fields)

    async def summarize(self, items: Items, model: str | None = None, **fields: Any) -> CompletionResult:
        """Summarize each item following ``summary_instructions``."""
        return await self.run(items, model, operation="summarize", **fields)

    async def enrich(self, items: Items, model: str | None = None, **fields: Any) -> CompletionResult:
        """Fill in the declared ``fields`` for each item."""
        return await self.run(items, model, operation="enrich", **fields)


class Completions:
    """Sync ``client.completions``: each call runs the async twin on the client's loop."""

    def __init__(self, bridge: SyncBridge, core: AsyncCompletions) -> None:
        self._bridge = bridge
        self._core = core

    def run(
        self, items: Items, model: str | None = None, *, operation: str = "run", **fields: Any
    ) -> CompletionResult:
        """Run any operation (a custom name makes a custom ``run``) over ``items``."""
        return self._bridge.run(self._core.run(items, model, operation=operation, **fields))

    def classify(self, items: Items, model: str | None = None, **fields: Any) -> CompletionResult:
        """Label each item with one of ``categories``."""
        return self._bridge.run(self._core.classify(items, model, **fields))

    def extract(self, items: Items, model: str | None = None, **fields: Any) -> CompletionResult:
        """Extract a JSON object per item following ``extraction_instructions``."""
        return self._bridge.run(self._core.extract(items, model, **fields))

    def summarize(self, items: Items, model: str | None = None, **fields: Any) -> CompletionResult:
        """Summarize each item following ``summary_instructions``."""
        return self._bridge.run(self._core.summarize(items, model, **fields))

    def enrich(self, items: Items, model: str | None = None, **fields: Any) -> CompletionResult:
        """Fill in the declared ``fields`` for each item."""
        return self._bridge.run(self._core.enrich(items, model, **fields))
