"""The embedded transport: the engine and its batch workers run inside this process.

Batches go to a store file (profile ``store``, else ``$AGENTFLOW_STORE``, else
``~/.local/share/agentflow/local.db``) so they survive restarts; opening the transport
starts the workers, which resume any batch a previous process left unfinished.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agentflow_jobs.engine.batches import BatchService, open_service
from agentflow_jobs.engine.requests import items_from_file, parse_request, upload_payload
from agentflow_jobs.errors import ProviderError, status_error
from agentflow_jobs.sdk.profiles import Profile, default_store_path, local_provider
from agentflow_jobs.sdk.transports import UploadForm
from agentflow_jobs.wire import Batch, CompletionResult, OutputPage

__all__ = ["LOCAL_OWNER", "EmbeddedTransport"]

# every embedded client (and a server run with --no-auth) acts as this one owner
LOCAL_OWNER = "local"


class EmbeddedTransport:
    """Calls the engine directly; must be opened and used in one event loop."""

    def __init__(self, profile: Profile) -> None:
        provider = profile.provider if profile.provider is not None else local_provider()
        store = profile.store or str(default_store_path())
        self.service: BatchService = open_service(provider, store, default_model=profile.model)
        self.service.start()

    async def complete(self, payload: dict[str, Any]) -> CompletionResult:
        request = parse_request(payload)
        try:
            return await self.service.complete(request)
        except ProviderError as exc:
            # the same error the server answers for a provider that gave up as a whole
            raise status_error(502, str(exc)) from exc

    async def submit(self, payload: dict[str, Any], *, idempotency_key: str | None) -> Batch:
        request = parse_request(payload)
        return self.service.submit(LOCAL_OWNER, request, idempotency_key=idempotency_key)[0]

    async def upload(
        self, filename: str, data: bytes, form: UploadForm, *, idempotency_key: str | None
    ) -> Batch:
        payload = upload_payload(form, items_from_file(filename, data))
        return await self.submit(payload, idempotency_key=idempotency_key)

    async def retrieve(self, batch_id: str) -> Batch:
        return self.service.retrieve(LOCAL_OWNER, batch_id)

    async def list(self, limit: int) -> list[Batch]:
        return self.service.list(LOCAL_OWNER, limit)

    async def cancel(self, batch_id: str) -> Batch:
        return await self.service.cancel(LOCAL_OWNER, batch_id)

    async def output(self, batch_id: str, offset: int, limit: int) -> OutputPage:
        if offset < 0 or limit < 0:
            raise status_error(422, f"{'offset' if offset < 0 else 'limit'}: must be >= 0")
        return self.service.output_page(LOCAL_OWNER, batch_id, offset, limit)

    async def export(self, batch_id: str, fmt: str) -> AsyncIterator[bytes]:
        for chunk in self.service.export(LOCAL_OWNER, batch_id, fmt):
            yield chunk.encode("utf-8")

    async def aclose(self) -> None:
        await self.service.aclose()

