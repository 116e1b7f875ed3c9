"""Quality of the offline model on our own labelled set: ``make eval`` / ``python -m bench.eval``.

Runs label (reviews → positive/negative/mixed), extract (contact sentence → name, title,
company) and enrich (company description → segment) through the real engine path: the
Executor when it exists, else the operations' own build/parse around the provider. A
thin observer around the provider checks every raw reply against the request's JSON
schema. Prints a table and writes ``bench/eval.json``.

Bars (issue 7): ≥ 70 % per operation, every reply schema-valid.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.errors import InvalidOutput, OperationInputError
from agentflow_jobs.operations import get_operation
from agentflow_jobs.providers.base import Provider
from agentflow_jobs.providers.local import LocalProvider
from agentflow_jobs.wire import CompletionRequest

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "eval"
OUT = Path(__file__).resolve().parent / "eval.json"
BAR = 0.70
CONTACT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "the person's full name"},
        "title": {"type": "string", "description": "the person's job title"},
        "company": {"type": "string", "description": "the company the person works for"},
    },
    "required": ["name", "title", "company"],
}
SEGMENT_FIELD = {
    "name": "segment",
    "type": "categorical",
    "valid_values": ["enterprise", "mid-market", "smb"],
    "description": "Company size: enterprise (large, thousands of employees), mid-market "
    "(hundreds of employees) or smb (small business, under 100 employees)",
}


class SchemaWatch:
    """A Provider that forwards to another and checks each reply against its schema."""

    name = "schema-watch"

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.default_model = inner.default_model
        self.replies = 0
        self.valid = 0

    async def chat(self, request: ChatRequest) -> ChatReply:
        reply = await self.inner.chat(request)
        self.replies += 1
        fmt = request.response_format or {}
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        try:
            jsonschema.validate(json.loads(reply.text), schema)
            self.valid += 1
        except (ValueError, jsonschema.ValidationError):
            print(f"schema-invalid reply: {reply.text[:120]!r}", file=sys.stderr)
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Case:
    operation: str
    request: CompletionRequest
    expected: list[Any]
    judge: Callable[[dict[str, Any], Any], bool]


def _rows(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, str) and " ".join(a.split()).strip(" .").casefold() == b.casefold()


def cases(limit: int | None) -> list[Case]:
    reviews, contacts, companies = (
        _rows(n)[:limit] for n in ("reviews.jsonl", "contacts.jsonl", "companies.jsonl")
    )
    strip = lambda rows, *keys: [{k: v for k, v in r.items() if k not in keys} for r in rows]  # noqa: E731
    return [
        Case(
            "label",
            CompletionRequest(
                operation="label",
                items=strip(reviews, "label"),
                categories=["positive", "negative", "mixed"],
            ),
            [r["label"] for r in reviews],
            lambda res, exp: res.get("label") == exp,
        ),
        Case(
            "extract",
            CompletionRequest(
                operation="extract",
                items=strip(contacts, "expected"),
                output_schema=CONTACT_SCHEMA,
                extraction_instructions="Extract the person's name, job title and company.",
            ),
            [r["expected"] for r in contacts],
            lambda res, exp: all(_same(res.get(k), v) for k, v in exp.items()),
        ),
        Case(
            "enrich",
            CompletionRequest(
                operation="enrich", items=strip(companies, "segment"), fields=[SEGMENT_FIELD]
            ),
            [r["segment"] for r in companies],
            lambda res, exp: res.get("segment") == exp,
        ),
    ]


async def _run_direct(provider: Provider, request: CompletionRequest) -> list[dict[str, Any]]:
    """The operations' own build/parse with the one re-ask, as the executor does."""
    bound = get_operation(request.operation).prepare(request)
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(request.items):
        try:
            chat = bound.build(item, request.model)
            reply = await provider.chat(chat)
            try:
                result = bound.parse(item, reply)
            except InvalidOutput as problem:
                result = bound.parse(
                    item, await provider.chat(bound.retry_request(chat, reply, problem))
                )
            rows.append({"index": index, "status": "completed", "result": result})
        except (InvalidOutput, OperationInputError) as exc:
            rows.append({"index": index, "status": "failed", "error": {"message": str(exc)}})
    return rows


async def _run(provider: Provider, request: CompletionRequest) -> tuple[list[dict[str, Any]], str]:
    if importlib.util.find_spec("agentflow_jobs.engine.executor") is not None:
        from agentflow_jobs.engine.executor import Executor

        executor = Executor(provider, concurrency=4)
        done = await executor.complete(request)
        return done.results, "executor"
    return await _run_direct(provider, request), "operations"


async def evaluate(limit: int | None) -> dict[str, Any]:
    watch = SchemaWatch(LocalProvider({"type": "local"}))
    # Load the model before timing, so items/s measures steady-state throughput.
    warm = cases(1)[0]
    await _run(watch, warm.request)
    watch.replies = watch.valid = 0
    report: dict[str, Any] = {"model": watch.default_model, "operations": {}}
    for case in cases(limit):
        before = (watch.replies, watch.valid)
        start = time.perf_counter()
        rows, path = await _run(watch, case.request)
        seconds = time.perf_counter() - start
        hits = sum(
            1
            for row, exp in zip(rows, case.expected, strict=True)
            if row.get("status") == "completed" and case.judge(row["result"], exp)
        )
        replies, valid = watch.replies - before[0], watch.valid - before[1]
        report["path"] = path
        report["operations"][case.operation] = {
            "items": len(rows),
            "accuracy": round(hits / len(rows), 4),
            "schema_valid": round(valid / replies, 4) if replies else 0.0,
            "replies": replies,
            "seconds": round(seconds, 2),
            "items_per_s": round(len(rows) / seconds, 2),
        }
    await watch.aclose()
    return report


def table(report: dict[str, Any]) -> str:
    head = f"{'operation':<10} {'items':>5} {'accuracy':>9} {'schema-valid':>13} {'items/s':>8}"
    lines = [f"model {report['model']} via {report['path']}", head, "-" * len(head)]
    for name, row in report["operations"].items():
        ok = "ok" if row["accuracy"] >= BAR and row["schema_valid"] == 1.0 else "BELOW BAR"
        lines.append(
            f"{name:<10} {row['items']:>5} {row['accuracy']:>9.1%} "
            f"{row['schema_valid']:>13.1%} {row['items_per_s']:>8.2f}  {ok}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="items per operation")
    args = parser.parse_args(argv)
    report = asyncio.run(evaluate(args.limit))
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(report))
    passed = all(
        r["accuracy"] >= BAR and r["schema_valid"] == 1.0 for r in report["operations"].values()
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
