"""The fake's OpenAI Batch API: files and batches, stateful and scripted.

Routes (under ``/v1``): ``POST /files`` (multipart, ``purpose=batch``), ``GET
/files/{id}/content``, ``DELETE /files/{id}``, ``POST /batches``, ``GET /batches``
(``limit``, ``after``), ``GET /batches/{id}``, ``POST /batches/{id}/cancel``; for
scripting ``POST /_fake/batch_script`` and ``GET /_fake/batch_stats``.

Input lines are checked like the real API at validation: JSON, ``method`` POST, ``url``
the batch's endpoint, unique ``custom_id`` matching ``^[A-Za-z0-9_-]{1,64}$``, one model
per file; a file that breaks a rule makes the batch ``failed`` with ``errors``. Lines
are answered with the sync fake's replies (``answers.reply_for`` under the same chat
script), so a batch answer and a sync answer of one request are the same.

A batch moves on by loop time, read whenever it is looked at: ``validating`` for
``validating_s``, ``in_progress`` for ``in_progress_s`` (its ``request_counts`` growing
with the time passed), then ends as scripted:

- ``outcome``: ``completed`` (default), ``expired`` (``answer_share`` of the lines
  answered, the rest ``batch_expired`` in the error file) or ``failed`` (validation);
- ``shuffle``: result lines in a random order; ``no_output_file``: every line fails
  into the error file and the batch still says ``completed``;
- ``error_status``: ``{"match": text, "status_code": 500}``: matching lines go to the
  error file with ``error: null`` and the failure inside ``response`` (openai-openapi #302);
- ``control``: faults on control routes, ``[{"route": "create", "status": 429,
  "times": 2, "retry_after": 0.1}]`` (routes: upload, create, list, retrieve, cancel,
  content, delete);
- ``cancel_share``: the share answered when a batch is cancelled (default 0.5);
  ``cancelling_s``: how long it stays ``cancelling``.

Counters (``batch_stats``): batches created, lines run and answered, files live/deleted,
control requests per route, ``duplicate_chunks`` (a batch created with the metadata of
an AgentFlow chunk that already had one: invariant 8 broken); the sync chat counter
stays the fake's ``requests``.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.answers import error_json, reply_for
from tests.fakes.control import ScriptedControl
from tests.fakes.script import FakeState

__all__ = ["FakeBatches"]

CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SETTINGS = {"validating_s": 0.0, "in_progress_s": 0.0, "outcome": "completed", "answer_share": 1.0,
            "shuffle": False, "no_output_file": False, "error_status": None, "control": None,
            "cancel_share": 0.5, "cancelling_s": 0.0, "seed": 0}
_EXPIRES_S = 24 * 3600


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str]
    created: float  # monotonic
    created_at: int  # epoch
    script: dict[str, Any]
    status: str = "validating"
    lines: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, Any] | None = None
    cancel_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    answered: int = 0
    failed: int = 0


class FakeBatches(ScriptedControl):
    """Files and batches on the fake's loop; ``state`` is the chat fake's (its script)."""

    SETTINGS = SETTINGS

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (purpose, content)
        self.batches: dict[str, _Batch] = {}
        self._chunks: set[tuple[str | None, str | None]] = set()
        self._next = 0

    def stats(self) -> dict[str, Any]:
        counters = ("files_uploaded", "files_deleted", "batches_created", "batches_cancelled", "lines_run",
                    "lines_answered", "duplicate_chunks")
        return {**dict.fromkeys(counters, 0), **self.counts, "routes": dict(self.routes), "files_live": len(self.files),
                "chat_requests": self.state.count,
                "batches": {b.id: self._advance(b).status for b in self.batches.values()}}

    # ---- routing -------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str, tuple[str, ...]] | None:
        return _route(method, path.removeprefix("/v1").strip("/").split("/"))

    def _error(self, status: int, message: str) -> bytes:
        return error_json(message, status)

    # ---- files ---------------------------------------------------------------------

    def _upload(self, *, query: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        form = _multipart(headers.get("content-type", ""), body)
        if form.get("purpose", b"").decode() != "batch" or "file" not in form:
            raise ValueError("expected multipart fields purpose=batch and file")
        file_id = self._id("file")
        self.files[file_id] = ("batch", form["file"])
        self.counts["files_uploaded"] += 1
        return 200, {"id": file_id, "object": "file", "purpose": "batch", "bytes": len(form["file"])}

    def _content(self, file_id: str, **_: Any) -> tuple[int, Any]:
        return 200, self.files[file_id][1]

    def _delete(self, file_id: str, **_: Any) -> tuple[int, Any]:
        del self.files[file_id]
        self.counts["files_deleted"] += 1
        return 200, {"id": file_id, "object": "file", "deleted": True}

    # ---- batches -------------------------------------------------------------------

    def _create(self, *, query: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        data = json.loads(body or b"{}")
        if data.get("completion_window") != "24h":
            raise ValueError("completion_window must be 24h")
        if data.get("endpoint") not in ("/v1/chat/completions", "/v1/embeddings", "/v1/responses"):
            raise ValueError(f"unsupported endpoint {data.get('endpoint')!r}")
        file_id = str(data.get("input_file_id"))
        if file_id not in self.files:
            raise ValueError(f"input_file_id {file_id!r} not found")
        batch = _Batch(self._id("batch"), file_id, data["endpoint"], dict(data.get("metadata") or {}),
                       time.monotonic(), int(time.time()), dict(self.script))
        self.batches[batch.id] = batch
        self.counts["batches_created"] += 1
        # invariant 8: a second provider batch for one AgentFlow chunk (the engine's metadata)
        chunk = (batch.metadata.get("agentflow_batch"), batch.metadata.get("agentflow_chunk"))
        if chunk[0] is not None and chunk in self._chunks:
            self.counts["duplicate_chunks"] += 1
        self._chunks.add(chunk)
        return 200, self._object(batch)

    def _list(self, *, query: str, **_: Any) -> tuple[int, Any]:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        limit = int(params.get("limit", 20))
        ordered = list(reversed(self.batches.values()))  # newest first, as OpenAI lists
        if "after" in params:
            ids = [b.id for b in ordered]
            ordered = ordered[ids.index(params["after"]) + 1:] if params["after"] in ids else []
        page = ordered[:limit]
        return 200, {"object": "list", "data": [self._object(b) for b in page],
                     "has_more": len(ordered) > limit}

    def _retrieve(self, batch_id: str, **_: Any) -> tuple[int, Any]:
        return 200, self._object(self.batches[batch_id])

    def _cancel(self, batch_id: str, **_: Any) -> tuple[int, Any]:
        batch = self._advance(self.batches[batch_id])
        if batch.status in ("validating", "in_progress", "finalizing"):
            batch.status, batch.cancel_at = "cancelling", time.monotonic()
            self.counts["batches_cancelled"] += 1
        return 200, self._object(batch)

    def _object(self, batch: _Batch) -> dict[str, Any]:
        self._advance(batch)
        return {
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint, "errors": batch.errors,
            "input_file_id": batch.input_file_id, "completion_window": "24h", "status": batch.status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": batch.created_at, "expires_at": batch.created_at + _EXPIRES_S,
            "request_counts": {"total": len(batch.lines), "completed": self._done(batch), "failed": batch.failed},
            "metadata": batch.metadata,
        }

    # ---- the batch's life ----------------------------------------------------------

    def _done(self, batch: _Batch) -> int:
        """Lines answered so far: all of them at the end, in between by the time passed."""
        if batch.status != "in_progress":
            return batch.answered
        running = float(batch.script["in_progress_s"])
        passed = time.monotonic() - batch.created - float(batch.script["validating_s"])
        return int(len(batch.lines) * min(1.0, passed / running)) if running > 0 else 0

    def _advance(self, batch: _Batch) -> _Batch:
        now, script = time.monotonic(), batch.script
        if batch.status == "validating" and now - batch.created >= float(script["validating_s"]):
            self._validate(batch)
        if batch.status == "in_progress" and now - batch.created >= (
                float(script["validating_s"]) + float(script["in_progress_s"])):
            outcome = str(script["outcome"])
            share = float(script["answer_share"]) if outcome == "expired" else 1.0
            self._finish(batch, "expired" if outcome == "expired" else "completed", share, "batch_expired")
        if batch.status == "cancelling" and now - (batch.cancel_at or now) >= float(script["cancelling_s"]):
            self._finish(batch, "cancelled", float(script["cancel_share"]), "batch_cancelled")
        return batch

    def _validate(self, batch: _Batch) -> None:
        problems: list[dict[str, Any]] = []
        if batch.script["outcome"] == "failed":
            problems.append({"code": "invalid_request", "message": "scripted validation failure", "line": 1})
        lines = _input_lines(self.files[batch.input_file_id][1], batch.endpoint, problems)
        if problems:
            batch.status, batch.errors = "failed", {"object": "list", "data": problems[:10]}
            return
        batch.lines, batch.status = lines, "in_progress"

    def _finish(self, batch: _Batch, status: str, share: float, not_run: str) -> None:
        lines = list(batch.lines)
        rng = random.Random(int(batch.script["seed"]))
        answered = round(len(lines) * share)
        out: list[bytes] = []
        err: list[bytes] = []
        for number, line in enumerate(lines):
            if number >= answered:
                err.append(_line(line, None, {"code": not_run, "message": f"This request was not run ({not_run})."}))
                continue
            result, ok = self._answer(batch, line)
            (out if ok and not batch.script["no_output_file"] else err).append(result)
            batch.answered += ok
            batch.failed += not ok
        batch.failed += len(lines) - answered if status != "completed" else 0
        if batch.script["shuffle"]:
            rng.shuffle(out)
            rng.shuffle(err)
        if out:
            batch.output_file_id = self._file(b"".join(out))
        if err:
            batch.error_file_id = self._file(b"".join(err))
        batch.status = status

    def _answer(self, batch: _Batch, line: dict[str, Any]) -> tuple[bytes, bool]:
        """One line's result (the sync fake's reply to its body) and whether it is a 2xx."""
        body = line["body"]
        wanted = batch.script.get("error_status") or {}
        if wanted and str(wanted.get("match", "")) in json.dumps(body):
            code = int(wanted.get("status_code", 500))
            response = {"status_code": code, "request_id": "req_fake",
                        "body": json.loads(error_json("scripted line failure", code))}
            return _line(line, response, None), False
        self.counts["lines_run"] += 1
        number = self.counts["lines_run"]
        status, payload, _ = reply_for(body, self.state.plan(body), number)
        self.counts["lines_answered"] += status == 200
        response = {"status_code": status, "request_id": f"req_{number}",
                    "body": json.loads(payload) if payload.startswith(b"{") and payload.endswith(b"}")
                    else payload.decode()}
        return _line(line, response, None), 200 <= status < 300

    def _file(self, content: bytes) -> str:
        file_id = self._id("file")
        self.files[file_id] = ("batch_output", content)
        return file_id

    def _id(self, kind: str) -> str:
        self._next += 1
        return f"{kind}-fake{self._next:05d}"


def _route(method: str, parts: list[str]) -> tuple[str, tuple[str, ...]] | None:
    if parts[:1] == ["files"]:
        if method == "POST" and len(parts) == 1:
            return "upload", ()
        if method == "GET" and len(parts) == 3 and parts[2] == "content":
            return "content", (parts[1],)
        if method == "DELETE" and len(parts) == 2:
            return "delete", (parts[1],)
    if parts[:1] == ["batches"]:
        if len(parts) == 1:
            return ("create", ()) if method == "POST" else ("list", ()) if method == "GET" else None
        if method == "GET" and len(parts) == 2:
            return "retrieve", (parts[1],)
        if method == "POST" and len(parts) == 3 and parts[2] == "cancel":
            return "cancel", (parts[1],)
    return None


def _input_lines(content: bytes, endpoint: str, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input file's request lines, each rule the real API checks appended to ``problems``."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()
    for number, text in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            problems.append({"code": "invalid_json_line", "message": "not valid JSON", "line": number})
            continue
        custom_id = line.get("custom_id")
        checks = (
            (isinstance(custom_id, str) and bool(CUSTOM_ID.match(custom_id)), "invalid_custom_id"),
            (custom_id not in seen, "duplicate_custom_id"),
            (line.get("method") == "POST", "invalid_method"),
            (line.get("url") == endpoint, "mismatched_url"),
            (isinstance(line.get("body"), dict), "invalid_body"),
        )
        for ok, code in checks:
            if not ok:
                problems.append({"code": code, "message": f"line {number}: {code}", "line": number})
        seen.add(str(custom_id))
        if isinstance(line.get("body"), dict):
            models.add(str(line["body"].get("model")))
        lines.append(line)
    if len(models) > 1:
        problems.append({"code": "mismatched_model", "message": f"one model per file, got {sorted(models)}"})
    if not lines:
        problems.append({"code": "empty_file", "message": "the input file has no requests"})
    return lines


def _line(line: dict[str, Any], response: dict[str, Any] | None, error: dict[str, Any] | None) -> bytes:
    return json.dumps({"id": f"batch_req_{line.get('custom_id')}", "custom_id": line.get("custom_id"),
                       "response": response, "error": error}).encode() + b"\n"


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (enough for the client's upload)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ValueError("expected a multipart/form-data upload")
    fields: dict[str, bytes] = {}
    for part in body.split(b"--" + match.group(1).encode()):
        head, _, data = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head)
        if name:
            fields[name.group(1).decode()] = data.removesuffix(b"\r\n")
    return fields
