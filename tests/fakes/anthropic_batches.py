"""The Anthropic fake's Message Batches: created, listed, polled, ended, cancelled, expired.

Routes: ``POST /v1/messages/batches`` (the requests checked as the real API checks them:
a non-empty list, unique ``custom_id`` matching ``^[a-zA-Z0-9_-]{1,64}$``),
``GET /v1/messages/batches`` (``limit``, ``after_id``; newest first),
``GET /v1/messages/batches/{id}``, ``GET /v1/messages/batches/{id}/results`` (JSONL, once
ended), ``POST /v1/messages/batches/{id}/cancel``; for scripting ``POST
/_fake/batch_script`` and ``GET /_fake/batch_stats``.

The script has the OpenAI fake's names (``tests.fakes.batches``), so one test can drive
either: a batch is ``in_progress`` for ``validating_s`` + ``in_progress_s`` (Anthropic
has no validating step) and then ends as scripted:

- ``outcome``: ``completed`` (default; every line run), ``expired`` (``answer_share`` of
  the lines run, the rest ``expired``) or ``failed`` (the create itself is refused, 400);
- ``cancel_share``: the share run when a batch is cancelled (default 0.5), the rest
  ``canceled``; it stays ``canceling`` for ``cancelling_s``;
- ``error_status``: ``{"match": text, "status_code": 500}``: matching lines are
  ``errored`` with that status's error type;
- ``control``: faults on routes, ``[{"route": "create", "status": 529, "times": 1,
  "retry_after": 0.1}]`` (routes: create, list, retrieve, cancel, results);
- ``shuffle``: results in a random order (``seed``); without it they come in reverse
  order, so a client that relies on order fails either way.

Each line that runs is answered as the same body would be on ``POST /v1/messages``
(``anthropic_replies``, under the chat script: a scripted status makes it ``errored``).
Counters (``batch_stats``): batches created and cancelled, lines run and answered, the
requests per route, ``duplicate_chunks`` (a batch created for a chunk that had one: the
chunk read off the tag of its custom_ids, ``<tag>_<id>``); ``chat_requests`` is the sync
fake's count.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.anthropic_replies import anthropic_error, invalid, message_for
from tests.fakes.control import ScriptedControl
from tests.fakes.script import FakeState

__all__ = ["DAY_S", "SETTINGS", "BatchStore", "FakeBatch"]

SETTINGS = {"validating_s": 0.0, "in_progress_s": 0.0, "outcome": "completed", "answer_share": 1.0,
            "shuffle": False, "error_status": None, "control": None, "cancel_share": 0.5,
            "cancelling_s": 0.0, "seed": 0}
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DAY_S = 86_400.0
_BATCHES = "/v1/messages/batches"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeBatch:
    id: str
    created: float  # monotonic
    created_at: float  # epoch
    requests: list[dict[str, Any]]
    script: dict[str, Any]
    status: str = "in_progress"
    ended_at: float | None = None
    cancel_at: float | None = None  # monotonic
    cancel_initiated_at: float | None = None  # epoch
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if self.status != "ended":
            counts["processing"] = len(self.requests)
        for _, result in self.results:
            counts[str(result["type"])] += 1
        return counts


class BatchStore(ScriptedControl):
    """The batches of one fake, touched only from its server's loop."""

    SETTINGS = SETTINGS
    NAME = "fake anthropic"

    def __init__(self, state: FakeState, url: str = "") -> None:
        self.state = state
        self.url = url
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.batches: dict[str, FakeBatch] = {}
        self.bodies: list[Any] = []  # the create requests received, most recent last
        self._chunks: set[str] = set()

    def stats(self) -> dict[str, Any]:
        counters = ("batches_created", "batches_cancelled", "lines_run", "lines_answered", "duplicate_chunks")
        return {**dict.fromkeys(counters, 0), **self.counts, "routes": dict(self.routes),
                "files_live": 0, "chat_requests": self.state.count,
                "batches": {b.id: self._advance(b).status for b in self.batches.values()}}

    # ---- routing -------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str, tuple[str, ...]] | None:
        return _route(method, path)

    def _error(self, status: int, message: str) -> bytes:
        return anthropic_error(status, message)

    def _missing(self, key: str) -> str:
        return f"message batch {key} not found"

    # ---- the routes ----------------------------------------------------------------

    def _create(self, *, query: str, body: bytes, **_: Any) -> tuple[int, Any]:
        data = _json(body)
        self.bodies.append(data)
        requests = data.get("requests") if isinstance(data, dict) else None
        if not isinstance(requests, list) or not requests:
            raise ValueError("requests: at least one request is required")
        seen: set[str] = set()
        for number, line in enumerate(requests):
            custom_id = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id) or custom_id in seen:
                raise ValueError(f"requests.{number}.custom_id: must be unique and match ^[a-zA-Z0-9_-]{{1,64}}$")
            seen.add(custom_id)
        if self.script["outcome"] == "failed":
            raise ValueError("requests: scripted refusal of the batch")
        self.counts["batches_created"] += 1
        # invariant 8: a second provider batch for one AgentFlow chunk. Anthropic batches
        # carry no metadata; the client tags its custom_ids per chunk (``<tag>_<id>``)
        chunk = str(requests[0]["custom_id"]).partition("_")[0]
        if chunk in self._chunks:
            self.counts["duplicate_chunks"] += 1
        self._chunks.add(chunk)
        batch = FakeBatch(f"msgbatch_fake{self.counts['batches_created']:05d}", time.monotonic(), time.time(),
                          requests, dict(self.script))
        self.batches[batch.id] = batch
        return 200, self._object(batch)

    def _list(self, *, query: str, **_: Any) -> tuple[int, Any]:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        limit = int(params.get("limit", 20))
        ordered = sorted(self.batches.values(), key=lambda b: b.created, reverse=True)
        if "after_id" in params:
            ids = [b.id for b in ordered]
            ordered = ordered[ids.index(params["after_id"]) + 1:] if params["after_id"] in ids else []
        page = [self._object(b) for b in ordered[:limit]]
        return 200, {"data": page, "has_more": len(ordered) > limit,
                     "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}

    def _retrieve(self, batch_id: str, **_: Any) -> tuple[int, Any]:
        return 200, self._object(self.batches[batch_id])

    def _cancel(self, batch_id: str, **_: Any) -> tuple[int, Any]:
        batch = self._advance(self.batches[batch_id])
        if batch.status == "in_progress":
            batch.status, batch.cancel_at, batch.cancel_initiated_at = "canceling", time.monotonic(), time.time()
            self.counts["batches_cancelled"] += 1
        return 200, self._object(batch)

    def _results(self, batch_id: str, **_: Any) -> tuple[int, Any]:
        batch = self._advance(self.batches[batch_id])
        if batch.status != "ended":
            raise ValueError(f"message batch {batch_id} is still {batch.status}; no results yet")
        lines = [json.dumps({"custom_id": custom_id, "result": result}) for custom_id, result in batch.results]
        return 200, ("\n".join(lines) + "\n").encode()

    def _object(self, batch: FakeBatch) -> dict[str, Any]:
        self._advance(batch)
        ended = batch.status == "ended"
        return {
            "id": batch.id, "type": "message_batch", "processing_status": batch.status,
            "request_counts": batch.counts(), "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + DAY_S), "ended_at": _iso(batch.ended_at),
            "cancel_initiated_at": _iso(batch.cancel_initiated_at), "archived_at": None,
            "results_url": f"{self.url}{_BATCHES}/{batch.id}/results" if ended else None,
        }

    # ---- the batch's life ----------------------------------------------------------

    def _advance(self, batch: FakeBatch) -> FakeBatch:
        now, script = time.monotonic(), batch.script
        running = float(script["validating_s"]) + float(script["in_progress_s"])
        if batch.status == "in_progress" and now - batch.created >= running:
            expired = script["outcome"] == "expired"
            self._end(batch, float(script["answer_share"]) if expired else 1.0, "expired")
        if batch.status == "canceling" and now - (batch.cancel_at or now) >= float(script["cancelling_s"]):
            self._end(batch, float(script["cancel_share"]), "canceled")
        return batch

    def _end(self, batch: FakeBatch, share: float, not_run: str) -> None:
        run = round(len(batch.requests) * share)
        results = [(str(line["custom_id"]), self._run(batch, line.get("params")) if number < run
                    else {"type": not_run}) for number, line in enumerate(batch.requests)]
        if batch.script["shuffle"]:
            random.Random(int(batch.script["seed"])).shuffle(results)
        else:
            results.reverse()
        batch.results, batch.status, batch.ended_at = results, "ended", time.time()

    def _run(self, batch: FakeBatch, params: Any) -> dict[str, Any]:
        """One line's result, answered as the sync endpoint would answer its params."""
        self.counts["lines_run"] += 1
        problem = invalid(params)
        if problem is not None:
            return _errored(400, problem)
        wanted = batch.script.get("error_status") or {}
        if wanted and str(wanted.get("match", "")) in json.dumps(params):
            return _errored(int(wanted.get("status_code", 500)), "scripted line failure")
        effects = self.state.plan(params)
        if effects.status is not None and effects.status != 200:
            return _errored(effects.status, effects.body or f"fake anthropic scripted status {effects.status}")
        message = message_for(params, effects, self.counts["lines_run"])
        if message is None:
            return _errored(500, "internal error")
        self.counts["lines_answered"] += 1
        return {"type": "succeeded", "message": message}


def _errored(status: int, message: str) -> dict[str, Any]:
    return {"type": "errored", "error": json.loads(anthropic_error(status, message))}


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def _route(method: str, path: str) -> tuple[str, tuple[str, ...]] | None:
    if path == _BATCHES:
        return ("create", ()) if method == "POST" else ("list", ()) if method == "GET" else None
    if not path.startswith(_BATCHES + "/"):
        return None
    parts = path.removeprefix(_BATCHES + "/").split("/")
    if method == "GET" and len(parts) == 1:
        return "retrieve", (parts[0],)
    if method == "GET" and parts[1:] == ["results"]:
        return "results", (parts[0],)
    if method == "POST" and parts[1:] == ["cancel"]:
        return "cancel", (parts[0],)
    return None
