"""The ASGI app: ``create_app(...)`` wires the batch service, the gate and error bodies.

Every error leaves as ``{"error": {"code", "message"}}`` with a fitting status, never a
stack trace. The gate in front of the routes checks the API key, caps request bodies and
times requests; it answers 401/413 itself so a rejected request is never parsed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentflow_jobs import __version__
from agentflow_jobs.engine.batches import BatchService, open_service
from agentflow_jobs.engine.requests import describe_errors
from agentflow_jobs.errors import AgentFlowError, APIStatusError, ConfigError, ProviderError
from agentflow_jobs.server.auth import LOCAL_OWNER, KeyRing
from agentflow_jobs.server.metrics import Latency

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_MAX_UPLOAD", "BodyTooLarge", "create_app"]

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_MAX_UPLOAD = 128 * 1024 * 1024
UPLOAD_PATH = "/v1/batches/upload"
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
          415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited"}
log = logging.getLogger("agentflow_jobs.server")


class BodyTooLarge(HTTPException):
    """Raised while reading a body that grows past the limit (no Content-Length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code or _CODES.get(status, "server_error" if status >= 500 else "error"),
                      "message": message}}


class Gate:
    """Request id, authentication, body size limit and latency, before any route runs."""

    def __init__(
        self, app: ASGIApp, *, keys: KeyRing | None, latency: Latency, max_body: int, max_upload: int
    ) -> None:
        self.app, self.keys, self.latency = app, keys, latency
        self.max_body, self.max_upload = max_body, max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        # a caller's id is echoed (capped) so logs on both sides can be joined
        request_id = headers.get("x-request-id", "")[:128] or f"req_{uuid.uuid4().hex[:16]}"

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        try:
            await self._admit(scope, receive, send_with_id, headers)
        finally:
            self.latency.observe(time.perf_counter() - started)

    async def _admit(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        path: str = scope["path"]
        owner = LOCAL_OWNER if self.keys is None else self.keys.owner(headers.get("authorization"))
        if owner is None and path not in PUBLIC_PATHS:
            message = "missing or invalid API key (send `Authorization: Bearer <key>`)"
            await _reply(send, 401, error_body(401, message), {"www-authenticate": "Bearer"})
            return
        scope.setdefault("state", {})["owner"] = owner
        limit = self.max_upload if path == UPLOAD_PATH else self.max_body
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            message = f"request body of {declared} bytes is larger than the limit of {limit} bytes"
            await _reply(send, 413, error_body(413, message))
            return
        await self.app(scope, _capped(receive, limit), send)


def _capped(receive: Receive, limit: int) -> Callable[[], Awaitable[Message]]:
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return capped


async def _reply(send: Send, status: int, body: dict[str, Any], extra: Mapping[str, str] = {}) -> None:
    response = JSONResponse(body, status_code=status, headers=dict(extra))
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _install_error_handlers(app: FastAPI) -> None:
    def reply(status: int, message: str, code: str | None = None,
              headers: Mapping[str, str] | None = None) -> JSONResponse:
        return JSONResponse(error_body(status, message, code), status_code=status,
                            headers=dict(headers or {}))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's "error parsing the body"
            return reply(422, "request body is not valid JSON (nested too deeply)", "validation_error")
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return reply(exc.status_code, detail, headers=exc.headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return reply(422, describe_errors(exc.errors(), getattr(exc, "body", None)))

    async def on_status(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIStatusError)
        return reply(exc.status_code, exc.message, exc.code)

    async def on_provider(_: Request, exc: Exception) -> JSONResponse:
        return reply(502, f"model provider failed: {exc}", getattr(exc, "code", "provider_error"))

    async def on_agentflow(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AgentFlowError)
        log.error("request failed: %s", exc)
        return reply(500, exc.message, exc.code)

    async def on_crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return reply(500, "internal server error", "server_error")

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(APIStatusError, on_status)
    app.add_exception_handler(ProviderError, on_provider)
    app.add_exception_handler(AgentFlowError, on_agentflow)
    app.add_exception_handler(Exception, on_crash)


def create_app(
    *,
    provider_config: Mapping[str, Any] | None = None,
    store_path: str | Path | None = None,
    service: BatchService | None = None,
    api_keys: Iterable[str] = (),
    no_auth: bool = False,
    default_model: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
) -> FastAPI:
    """The service app. Without API keys it refuses to start unless ``no_auth`` is set.

    Give either a ready ``service`` or ``provider_config`` + ``store_path``; the service
    starts its workers when the app starts and stops them (leaving unfinished items
    queued) when it shuts down.
    """
    keys = KeyRing(api_keys)
    assembled = service is not None or (provider_config is not None and store_path is not None)
    _check_settings(keys, no_auth=no_auth, has_service=assembled)

    def open_running() -> BatchService:
        return service or open_service(provider_config or {}, store_path or "",
                                       default_model=default_model)

    from agentflow_jobs.server.routes import router

    app = FastAPI(title="AgentFlow", version=__version__, lifespan=_lifespan(open_running),
                  redoc_url=None, docs_url="/docs")
    app.state.latency = Latency()
    _install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(
        Gate, keys=None if no_auth and not len(keys) else keys, latency=app.state.latency,
        max_body=max_body_bytes, max_upload=max_upload_bytes,
    )
    return app


def _check_settings(keys: KeyRing, *, no_auth: bool, has_service: bool) -> None:
    """Refuse to build an app that would be open to anyone, or have nothing to serve."""
    if not len(keys) and not no_auth:
        raise ConfigError(
            "no API keys configured: pass --api-keys-file FILE or set AGENTFLOW_API_KEYS "
            "(comma-separated), or run with --no-auth on a trusted network"
        )
    if not has_service:
        raise ConfigError("create_app needs a service, or provider_config and store_path")


def _lifespan(
    open_running: Callable[[], BatchService],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open the service (workers resume unfinished batches) while the app runs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = open_running()
        app.state.service = running
        running.start()
        try:
            yield
        finally:
            await running.aclose()

    return lifespan
