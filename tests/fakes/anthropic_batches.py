"""The Anthropic fake's Message Batches: created, polled, ended, cancelled, expired.

Each line of a new batch is answered at creation exactly as the same body would be on
``POST /v1/messages`` (the script's rules apply per line: a scripted status makes an
``errored`` line), and the batch then runs for ``batch_ticks`` retrieves (default 0:
ended at the first retrieve). Settings, scripted like any other
(``fake.script(batch_ticks=3)``):

- ``batch_ticks``: retrieves that still show ``in_progress``;
- ``batch_expire``: the batch ends as expired: only its first ``batch_done`` lines
  (default 0) have results, the rest are ``expired``;
- ``batch_done``: on a cancel, the lines that had finished (default 0): the rest are
  ``canceled``;
- ``batch_create_status``: answer ``POST /v1/messages/batches`` with this error status
  (its lines are never run), ``batch_create_times`` times (default: always).

Results are served in reverse order of the request lines, so a client relying on order
fails. ``results_url`` points at this fake.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.anthropic_replies import anthropic_error, invalid, message_for
from tests.fakes.script import FakeState

__all__ = ["BATCH_SETTINGS", "BatchStore", "FakeBatch"]

BATCH_SETTINGS = ("batch_ticks", "batch_expire", "batch_done", "batch_create_status", "batch_create_times")
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DAY_S = 86_400.0
RETENTION_S = 29 * DAY_S


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeBatch:
    id: str
    created_at: float
    lines: list[tuple[str, dict[str, Any]]]  # custom_id, result object
    ticks: int
    status: str = "in_progress"
    ended_at: float | None = None
    cancel_initiated_at: float | None = None
    fates: dict[str, str] = field(default_factory=dict)  # custom_id -> canceled | expired

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for custom_id, result in self.lines:
            kind = "processing" if self.status != "ended" else self.fates.get(custom_id, result["type"])
            counts[kind] += 1
        return counts


class BatchStore:
    """The batches of one fake, touched only from its server's loop."""

    def __init__(self, state: FakeState, url: str = "") -> None:
        self.state = state
        self.url = url
        self.reset()

    def reset(self) -> None:
        self.batches: dict[str, FakeBatch] = {}
        self.settings: dict[str, Any] = {"batch_ticks": 0, "batch_expire": False, "batch_done": 0,
                                         "batch_create_status": None, "batch_create_times": None}
        self.created = 0
        self.lines_run = 0
        self.bodies: list[Any] = []  # the create requests received, most recent last

    def script(self, data: dict[str, Any]) -> None:
        for key in BATCH_SETTINGS:
            if key in data:
                self.settings[key] = data.pop(key)

    def create(self, body: Any) -> tuple[int, bytes]:
        failed = self._create_failure()
        if failed is not None:
            return failed
        self.bodies.append(body)
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return 400, anthropic_error(400, "requests: at least one request is required")
        seen: set[str] = set()
        for number, line in enumerate(requests):
            custom_id = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id) or custom_id in seen:
                return 400, anthropic_error(400, f"requests.{number}.custom_id: must be unique and "
                                                 "match ^[a-zA-Z0-9_-]{1,64}$")
            seen.add(custom_id)
        self.created += 1
        batch_id = f"msgbatch_fake{self.created:04d}"
        lines = [(line["custom_id"], self._run(line.get("params"))) for line in requests]
        batch = FakeBatch(batch_id, time.time(), lines, int(self.settings["batch_ticks"]))
        self.batches[batch_id] = batch
        return 200, json.dumps(self.view(batch)).encode()

    def _create_failure(self) -> tuple[int, bytes] | None:
        status, times = self.settings["batch_create_status"], self.settings["batch_create_times"]
        if not status or (times is not None and times <= 0):
            return None
        if times is not None:
            self.settings["batch_create_times"] = times - 1
        return int(status), anthropic_error(int(status), f"fake anthropic scripted status {status}")

    def _run(self, params: Any) -> dict[str, Any]:
        """One line's result, answered as the sync endpoint would answer its params."""
        self.lines_run += 1
        problem = invalid(params)
        if problem is not None:
            return {"type": "errored", "error": json.loads(anthropic_error(400, problem))}
        effects = self.state.plan(params)
        if effects.status is not None and effects.status != 200:
            return {"type": "errored", "error": json.loads(anthropic_error(effects.status, effects.body or
                                                           f"fake anthropic scripted status {effects.status}"))}
        message = message_for(params, effects, self.lines_run)
        if message is None:
            return {"type": "errored", "error": json.loads(anthropic_error(500, "internal error"))}
        return {"type": "succeeded", "message": message}

    def retrieve(self, batch_id: str) -> tuple[int, bytes]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, anthropic_error(404, f"batch {batch_id} not found")
        if batch.status != "ended":
            if batch.ticks > 0:
                batch.ticks -= 1
            else:
                self._end(batch)
        return 200, json.dumps(self.view(batch)).encode()

    def _end(self, batch: FakeBatch) -> None:
        done = int(self.settings["batch_done"] or 0)
        fate = "canceled" if batch.status == "canceling" else "expired" if self.settings["batch_expire"] else None
        if fate is not None:
            batch.fates = {custom_id: fate for custom_id, _ in batch.lines[done:]}
        batch.status, batch.ended_at = "ended", time.time()

    def cancel(self, batch_id: str) -> tuple[int, bytes]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, anthropic_error(404, f"batch {batch_id} not found")
        if batch.status == "in_progress":
            batch.status, batch.cancel_initiated_at, batch.ticks = "canceling", time.time(), 0
        return 200, json.dumps(self.view(batch)).encode()

    def results(self, batch_id: str) -> tuple[int, bytes]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, anthropic_error(404, f"batch {batch_id} not found")
        if batch.status != "ended":
            return 400, anthropic_error(400, f"batch {batch_id} is still {batch.status}; no results yet")
        lines = []
        for custom_id, result in reversed(batch.lines):
            fate = batch.fates.get(custom_id)
            lines.append(json.dumps({"custom_id": custom_id, "result": {"type": fate} if fate else result}))
        return 200, ("\n".join(lines) + "\n").encode()

    def listing(self) -> tuple[int, bytes]:
        data = [self.view(b) for b in sorted(self.batches.values(), key=lambda b: b.created_at, reverse=True)]
        first = data[0]["id"] if data else None
        last = data[-1]["id"] if data else None
        return 200, json.dumps({"data": data, "has_more": False, "first_id": first, "last_id": last}).encode()

    def view(self, batch: FakeBatch) -> dict[str, Any]:
        ended = batch.status == "ended"
        return {
            "id": batch.id, "type": "message_batch", "processing_status": batch.status,
            "request_counts": batch.counts(), "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + DAY_S), "ended_at": _iso(batch.ended_at),
            "cancel_initiated_at": _iso(batch.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }
