"""Run one CompletionRequest over its items through a provider, concurrently.

A fixed pool of ``concurrency`` worker tasks pulls item positions from one shared
iterator (no task per item: a 100k-item request costs 64 tasks, not 100k), and hands
finished rows to the caller through a small bounded queue, so rows stream out as they
finish and memory stays flat however many items there are. ``complete`` keeps every
row anyway, so there the workers write each row dict straight into its slot.

Per item: ``build`` → ``provider.chat`` → ``parse``. A reply that breaks the operation's
contract is re-asked once with the problem spelled out, then the row fails with
``invalid_output``. A model that declines (a refusal, the provider's content filter)
fails the row with ``refused`` at once: asking again would pay for the same answer.
Every other per-item problem is a failed row too, never an exception:
``OperationInputError`` (its code), ``ProviderError`` (its code), anything unexpected
(``internal_error``, logged). A row's ``usage.requests`` counts every HTTP request it
took, the failed attempts included, and ``usage.cost_usd`` what its tokens cost at the
model's price (``pricing``) when that is known: each item is sent as a chat request, so
it is priced at the sync price, even inside a batch. Two things fail the request as a whole: a
broken request (``InvalidRequest`` from ``prepare``, before anything is sent) and a
provider refusing our credentials (``ProviderError`` code ``auth``) or an account with
nothing left to spend (``insufficient_quota``), because every
other item would fail the same way and paying for 100k rejected calls helps nobody.

Provider retries (429, 5xx, timeouts, backoff) live in the provider. The executor only
tries an item again when the provider raises a ProviderError marked ``retryable`` — a
provider's way of saying "I did not retry this myself" — up to ``request.max_attempts``
or the executor's ``max_attempts`` calls.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from typing import Any

import structlog

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.errors import (
    InvalidOutput,
    InvalidRequest,
    OperationInputError,
    ProviderError,
    RefusalError,
)
from agentflow_jobs.operations import BoundOperation, get_operation
from agentflow_jobs.pricing import Price, cost_usd
from agentflow_jobs.providers.base import Provider
from agentflow_jobs.wire import CompletionRequest, CompletionResult, ResultRow, Usage

__all__ = ["FATAL_PROVIDER_CODES", "Executor"]

log = structlog.get_logger(__name__)

# Provider error codes that would fail every item alike: stop the request instead.
FATAL_PROVIDER_CODES = frozenset({"auth", "insufficient_quota"})
# The wait between the executor's own attempts: the provider's Retry-After up to 30 s,
# else full jitter under 1 s doubling to 30 s.
# distinct operation set-ups kept bound (a service serves many jobs at once)
_BOUND_KEPT = 64
_RETRY = RetryPolicy(base_delay=1.0, max_delay=30.0, max_retry_after=30.0)


class Executor:
    """Executes CompletionRequests against one provider, ``concurrency`` items at a time."""

    def __init__(
        self,
        provider: Provider,
        *,
        concurrency: int = 64,
        max_attempts: int = 3,
        default_model: str | None = None,
        price: Callable[[str | None], Price | None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.provider = provider
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.default_model = default_model
        # the price of a model (None: unknown); rows then carry usage.cost_usd
        self.price = price
        # kinds of unexpected item errors already logged with a traceback, across requests
        # (the runner sends a job as many small requests)
        self.logged: set[str] = set()
        # operations bound to a request's fields, reused by every request with the same
        # fields: the runner sends a job item by item, and binding (an extract schema's
        # validator, say) can cost far more than an item's own work
        self._bound: dict[str, BoundOperation] = {}
        # items started, by model, until the window is full and its price is looked up
        self._started: dict[str | None, int] = {}

    def bind(self, request: CompletionRequest) -> BoundOperation:
        """The operation bound to ``request``'s fields (its items play no part); InvalidRequest."""
        key = request.model_dump_json(exclude={"items", "metadata", "id_field"})
        bound = self._bound.get(key)
        if bound is None:
            bound = get_operation(request.operation).prepare(request.model_copy(update={"items": []}))
            if len(self._bound) >= _BOUND_KEPT:
                self._bound.pop(next(iter(self._bound)))
            self._bound[key] = bound
        return bound

    def warm_price(self, model: str | None, items: int) -> None:
        """Look ``model``'s price up once the window is full: ``concurrency`` items started
        (the runner starts them in waves), or a request's own workers all started. The
        first lookup loads the price table (~50 ms); then nothing can start before an
        answer comes back, so it holds back neither the first requests nor the first
        answers. A row answered sooner looks the price up itself."""
        started = self._started.get(model, 0)
        if self.price is None or started >= self.concurrency:
            return  # no price to look up, or looked up already
        # a request of several items starts as many workers as the window takes
        started = started + 1 if items == 1 else self.concurrency
        self._started[model] = started
        if started >= self.concurrency:
            asyncio.get_running_loop().call_soon(self.price, model)

    def model_for(self, request: CompletionRequest) -> str | None:
        """The model the request runs on: its own, else the default, else the provider's."""
        return request.model or self.default_model or getattr(self.provider, "default_model", None)

    async def stream(
        self, request: CompletionRequest, *, indices: Sequence[int] | None = None
    ) -> AsyncGenerator[ResultRow, None]:
        """Rows as they finish (any order); ``index`` is the position or ``indices[i]``."""
        if indices is not None and len(indices) != len(request.items):
            raise InvalidRequest(
                f"got {len(indices)} indices for {len(request.items)} items; they must match"
            )
        if not request.items:
            return
        run = _Run(self, request, indices)
        workers = min(self.concurrency, len(request.items))
        queue: asyncio.Queue[ResultRow | None] = asyncio.Queue(maxsize=2 * workers)
        positions = iter(range(len(request.items)))
        tasks = [asyncio.create_task(run.work(positions, queue)) for _ in range(workers)]
        run.started()
        try:
            running = workers
            while running:
                row = await queue.get()
                if run.fatal is not None:
                    raise run.fatal
                if row is None:
                    running -= 1
                else:
                    yield row
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        """All rows in item order, with the usage summed over them."""
        # workers write rows straight into their slots: no queue hop
        rows: list[ResultRow] = []
        if len(request.items) == 1:
            # the runner's sync mode sends one item per request: no worker task to hop through
            run = _Run(self, request, None)
            run.started()
            rows = [await run.row(0)]
        elif request.items:
            run = _Run(self, request, None)
            positions = iter(range(len(request.items)))
            slots: list[ResultRow | None] = [None] * len(request.items)
            workers = min(self.concurrency, len(request.items))
            tasks = [asyncio.create_task(run.fill(positions, slots)) for _ in range(workers)]
            run.started()
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            rows = [row for row in slots if row is not None]
        total = Usage()
        for row in rows:
            total.include(row["usage"])
        # trusted rows built above: no validation pass over 100k dicts
        return CompletionResult.model_construct(
            operation=request.operation_name or request.operation,
            model=self.model_for(request),
            results=rows,
            usage=total,
        )

    async def aclose(self) -> None:
        """Close the provider (connections, threads, models)."""
        await self.provider.aclose()


class _Run:
    """One request in flight: the bound operation and what every worker shares."""

    def __init__(
        self, executor: Executor, request: CompletionRequest, indices: Sequence[int] | None
    ) -> None:
        self.provider = executor.provider
        self.bound: BoundOperation = executor.bind(request)
        self.items = request.items
        self.indices = indices
        self.id_field = request.id_field
        self.model = request.model or executor.default_model
        self.attempts = request.max_attempts or executor.max_attempts
        self.fatal: BaseException | None = None
        self.logged = executor.logged
        self._executor, self._priced_model = executor, executor.model_for(request)

    def started(self) -> None:
        """Its workers are started (their first steps scheduled): see ``warm_price``."""
        self._executor.warm_price(self._priced_model, len(self.items))

    async def work(self, positions: Iterator[int], queue: asyncio.Queue[ResultRow | None]) -> None:
        """Take positions until none are left; a fatal error stops every worker."""
        try:
            for position in positions:
                if self.fatal is not None:
                    break
                await queue.put(await self.row(position))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # only fatal ProviderErrors reach here (or a bug)
            if self.fatal is None:
                self.fatal = exc
        await queue.put(None)

    async def fill(self, positions: Iterator[int], rows: list[ResultRow | None]) -> None:
        """Like ``work``, writing each row into its slot; a fatal error propagates."""
        for position in positions:
            rows[position] = await self.row(position)

    async def row(self, position: int) -> ResultRow:
        """The row for one item, priced when the price is known; only a fatal ProviderError escapes."""
        row = await self.answer(position)
        price = self.price
        if price is not None:
            usage = row["usage"]
            usage["cost_usd"] = cost_usd(
                price, int(usage["prompt_tokens"]), int(usage["completion_tokens"])
            )
        return row

    @functools.cached_property
    def price(self) -> Price | None:
        """The model's price (``Executor.warm_price`` has usually looked it up by now)."""
        lookup = self._executor.price
        return lookup(self._priced_model) if lookup is not None else None

    async def answer(self, position: int) -> ResultRow:
        """The unpriced row for one item."""
        item = self.items[position]
        index = self.indices[position] if self.indices is not None else position
        row_id = None
        if self.id_field is not None and item.get(self.id_field) is not None:
            row_id = str(item[self.id_field])
        tally = Usage()
        try:
            result = await self.outcome(item, tally)
        except OperationInputError as exc:
            return _failed(index, row_id, exc.code, exc.message, tally)
        except InvalidOutput as exc:
            message = f"{exc.message} (still invalid after one re-ask)"
            return _failed(index, row_id, "invalid_output", message, tally)
        except RefusalError as exc:
            return _failed(index, row_id, "refused", f"the model declined: {exc}", tally)
        except ProviderError as exc:
            if exc.code in FATAL_PROVIDER_CODES:
                raise
            return _failed(index, row_id, exc.code, exc.message, tally)
        except Exception as exc:
            kind = type(exc).__name__
            if kind not in self.logged:  # one traceback per kind, not one per item of 100k
                self.logged.add(kind)
                log.exception("item failed unexpectedly (later items failing the same way "
                              "are in their rows only)", index=index)
            message = f"internal error: {kind}: {exc}"
            return _failed(index, row_id, "internal_error", message, tally)
        return {
            "index": index,
            "id": row_id,
            "status": "completed",
            "result": result,
            "error": None,
            "usage": tally.as_dict(),
        }

    async def outcome(self, item: dict[str, Any], tally: Usage) -> dict[str, Any]:
        """Build, send, parse; one re-ask when the reply is invalid."""
        chat = self.bound.build(item, self.model)
        reply = await self.send(chat, tally)
        try:
            return self.bound.parse(item, reply)
        except InvalidOutput as problem:
            again = await self.send(self.bound.retry_request(chat, reply, problem), tally)
            return self.bound.parse(item, again)

    async def send(self, chat: ChatRequest, tally: Usage) -> ChatReply:
        """One provider call, repeated only for errors the provider left to us."""
        attempt = 1
        while True:
            try:
                reply = await self.provider.chat(chat)
            except ProviderError as exc:
                tally.requests += exc.attempts
                if not exc.retryable or attempt >= self.attempts:
                    raise
                await asyncio.sleep(_RETRY.delay(attempt, exc.retry_after))
                attempt += 1
                continue
            tally.include(reply.usage)
            if not reply.usage.requests:  # a provider that does not count its own requests
                tally.requests += 1
            if reply.refusal is not None:
                raise RefusalError(reply.refusal)
            return reply


def _failed(index: int, row_id: str | None, code: str, message: str, tally: Usage) -> ResultRow:
    return {
        "index": index,
        "id": row_id,
        "status": "failed",
        "result": None,
        "error": {"code": code, "message": message},
        "usage": tally.as_dict(),
    }
