"""``AgentFlow`` and ``AsyncAgentFlow``: one API over two transports.

``AsyncAgentFlow`` holds all the logic. ``AgentFlow`` runs it on one event loop in a
daemon thread it owns and waits for each call, so the sync twin never duplicates a
decision. Embedded batches keep running on that thread while the client is open.

A closed client opens again on its next call (the reference page keeps using ``client``
after its ``with`` block); close it again when done.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Coroutine
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from agentflow_jobs.errors import ConfigError
from agentflow_jobs.log import ensure_logging, register_secret
from agentflow_jobs.sdk.profiles import Profile, load_profile
from agentflow_jobs.sdk.transports import Transport

if TYPE_CHECKING:
    from typing import Self

    from agentflow_jobs.sdk.batches import AsyncBatches, Batches
    from agentflow_jobs.sdk.completions import AsyncCompletions, Completions

__all__ = ["DEFAULT_TIMEOUT", "AgentFlow", "AsyncAgentFlow", "SyncBridge"]

T = TypeVar("T")
DEFAULT_TIMEOUT = 600.0


def _resolve(
    base_url: str | None, api_key: str | None, profile: str | None, timeout: float | None
) -> Profile:
    """Explicit arguments win over the profile; ``AGENTFLOW_API_KEY`` fills a missing key."""
    if base_url:
        key = api_key or os.environ.get("AGENTFLOW_API_KEY")
        return Profile(name="explicit", engine="http", source="arguments", base_url=base_url,
                       api_key=key, timeout=timeout)
    resolved = load_profile(profile)
    if api_key and resolved.engine == "http":
        resolved = Profile(**{**resolved.__dict__, "api_key": api_key})
    return resolved


class AsyncAgentFlow:
    """The async client. ``async with AsyncAgentFlow.from_profile("prod") as client: ...``"""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        profile: str | None = None,
        max_retries: int = 2,
    ) -> None:
        ensure_logging()
        self.profile = _resolve(base_url, api_key, profile, timeout)
        # never printed, whatever ends up in a log line or an error message
        for secret in (self.profile.api_key, (self.profile.provider or {}).get("api_key")):
            register_secret(secret if isinstance(secret, str) else None)
        self.timeout = timeout or self.profile.timeout or DEFAULT_TIMEOUT
        self.max_retries = max_retries
        self._transport: Transport | None = None

    @classmethod
    def from_profile(cls, name: str | None = None, **kwargs: Any) -> Self:
        """A client for profile ``name`` (default ``$AGENTFLOW_PROFILE``, else ``local``)."""
        return cls(profile=name, **kwargs)

    @property
    def transport_name(self) -> str:
        return self.profile.engine

    @cached_property
    def completions(self) -> AsyncCompletions:
        from agentflow_jobs.sdk.completions import AsyncCompletions

        return AsyncCompletions(self)

    @cached_property
    def batches(self) -> AsyncBatches:
        from agentflow_jobs.sdk.batches import AsyncBatches

        return AsyncBatches(self)

    async def _open(self) -> Transport:
        """The transport, opened on first use (embedded workers start here)."""
        if self._transport is None:
            if self.profile.engine == "http":
                from agentflow_jobs.sdk.transports.http import HTTPTransport

                assert self.profile.base_url is not None
                self._transport = HTTPTransport(
                    self.profile.base_url, self.profile.api_key,
                    timeout=self.timeout, max_retries=self.max_retries,
                )
            elif self.profile.engine == "embedded":
                from agentflow_jobs.sdk.transports.embedded import EmbeddedTransport

                self._transport = EmbeddedTransport(self.profile)
            else:  # pragma: no cover - profiles only produce the two
                raise ConfigError(f"unknown engine {self.profile.engine!r}")
        return self._transport

    async def close(self) -> None:
        """Stop embedded workers (unfinished batches resume next time) and drop connections."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    aclose = close

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class _LoopThread:
    """One event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="agentflow-sdk-loop", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the caller must not leave the call running in the background
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        try:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


class SyncBridge:
    """Runs the async core's calls on a loop thread that it starts on demand.

    Resources hold the bridge, never the client, so dropping the last reference to a
    client finalizes it at once and its thread is joined (no reference cycle to wait for).
    """

    def __init__(self, core: AsyncAgentFlow) -> None:
        self.core = core
        self._lock = threading.Lock()
        self._thread: _LoopThread | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._thread is None:
                self._thread = _LoopThread()
            thread = self._thread
        return thread.run(coro)

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        if threading.current_thread() is thread.thread:  # dropped on its own loop: no join
            thread.loop.call_soon(thread.loop.stop)
            return
        try:
            thread.run(self.core.close())
        finally:
            thread.stop()


class AgentFlow:
    """The sync client. ``with AgentFlow.from_profile("prod") as client: ...``"""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        profile: str | None = None,
        max_retries: int = 2,
    ) -> None:
        self._core = AsyncAgentFlow(
            base_url, api_key, timeout=timeout, profile=profile, max_retries=max_retries
        )
        self._bridge = SyncBridge(self._core)
        weakref.finalize(self, self._bridge.close)
        try:
            # open now, so an embedded client resumes unfinished batches straight away
            self._bridge.run(self._core._open())
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_profile(cls, name: str | None = None, **kwargs: Any) -> Self:
        """A client for profile ``name`` (default ``$AGENTFLOW_PROFILE``, else ``local``)."""
        return cls(profile=name, **kwargs)

    @property
    def profile(self) -> Profile:
        return self._core.profile

    @property
    def transport_name(self) -> str:
        return self._core.transport_name

    @cached_property
    def completions(self) -> Completions:
        from agentflow_jobs.sdk.completions import Completions

        return Completions(self._bridge, self._core.completions)

    @cached_property
    def batches(self) -> Batches:
        from agentflow_jobs.sdk.batches import Batches

        return Batches(self._bridge, self._core.batches)

    def close(self) -> None:
        """Stop embedded workers and the background thread; joins the thread."""
        self._bridge.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
