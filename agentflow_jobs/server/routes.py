"""The HTTP routes of DESIGN.md §4.4, each a thin call into the batch service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from agentflow_jobs.engine.batches import BatchService
from agentflow_jobs.engine.export import ExportFormat
from agentflow_jobs.engine.requests import items_from_file, parse_request, upload_payload
from agentflow_jobs.errors import status_error
from agentflow_jobs.server.metrics import render
from agentflow_jobs.wire import Batch, CompletionRequest, CompletionResult, OutputPage

__all__ = ["router"]

router = APIRouter()
MAX_INT = 2**62  # beyond this SQLite cannot hold the number
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in ((401, "Missing or wrong API key"), (404, "No such batch"),
                       (409, "Idempotency key reused with another body"),
                       (413, "Body too large"), (422, "Invalid request"))
}


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Batch]


def _service(request: Request) -> BatchService:
    service: BatchService = request.app.state.service
    return service


def _owner(request: Request) -> str:
    return str(request.state.owner)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    text = render(_service(request), request.app.state.latency)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


@router.post("/v1/completions", responses=_ERRORS)
async def completions(request: Request, body: CompletionRequest) -> CompletionResult:
    return await _service(request).complete(body)


@router.post("/v1/batches", responses=_ERRORS)
async def submit(
    request: Request, body: CompletionRequest, idempotency_key: IdempotencyKey = None
) -> Batch:
    return _service(request).submit(_owner(request), body, idempotency_key=idempotency_key)[0]


@router.post("/v1/batches/upload", responses=_ERRORS)
async def upload(
    request: Request,
    file: Annotated[UploadFile, File(description="Items: .jsonl, .csv, .json or .txt")],
    operation: Annotated[str, Form(min_length=1)],
    model: Annotated[str | None, Form()] = None,
    fields: Annotated[str | None, Form(description="JSON object of operation fields")] = None,
    metadata: Annotated[str | None, Form(description="JSON object of strings")] = None,
    idempotency_key: IdempotencyKey = None,
) -> Batch:
    form = {"operation": operation, "model": model or None,
            "fields": _json_form("fields", fields), "metadata": _json_form("metadata", metadata)}
    items = items_from_file(file.filename or "upload.jsonl", await file.read())
    body = parse_request(upload_payload(form, items))
    return _service(request).submit(_owner(request), body, idempotency_key=idempotency_key)[0]


def _json_form(name: str, value: str | None) -> Any:
    if value is None or not value.strip():
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise status_error(422, f"{name}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise status_error(422, f"{name}: JSON nested too deeply") from None


@router.get("/v1/batches", responses=_ERRORS)
async def list_batches(
    request: Request, limit: Annotated[int, Query(ge=0, le=MAX_INT)] = 20
) -> BatchList:
    return BatchList(data=_service(request).list(_owner(request), limit))


@router.get("/v1/batches/{batch_id}", responses=_ERRORS)
async def retrieve(request: Request, batch_id: str) -> Batch:
    return _service(request).retrieve(_owner(request), batch_id)


@router.post("/v1/batches/{batch_id}/cancel", responses=_ERRORS)
async def cancel(request: Request, batch_id: str) -> Batch:
    return await _service(request).cancel(_owner(request), batch_id)


@router.get(
    "/v1/batches/{batch_id}/output",
    response_model=OutputPage,
    responses={**_ERRORS, 200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def output(
    request: Request,
    batch_id: str,
    format: ExportFormat = "json",
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=0, le=MAX_INT, description="capped at 10000")] = 1000,
) -> Any:
    """A JSON page of rows in item order, or the whole output streamed as JSONL / CSV."""
    service, owner = _service(request), _owner(request)
    if format == "json":
        page = service.output_page(owner, batch_id, offset, limit)
        return JSONResponse(page.model_dump(mode="json"))
    chunks: Iterator[str] = service.export(owner, batch_id, format)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    disposition = f'attachment; filename="{batch_id}.{format}"'
    return StreamingResponse(chunks, media_type=media, headers={"Content-Disposition": disposition})
