"""plan and apply count what reaches the provider: items the operation would refuse unsent
(empty, too long) are input errors, never "to send" or "sent", and add no tokens."""

from __future__ import annotations

import json
from typing import Any

from tests.runner.conftest import Workspace

SENDABLE = [
    {"rid": "r0", "content": "great"},
    {"rid": "r3", "content": "poison: answered with a label outside the categories"},
    {"rid": "r4", "content": "awful"},
    {"rid": "r5", "content": "fine, great"},
]
UNSENDABLE = [
    {"rid": "r1", "content": "   "},
    {"rid": "r2", "content": "long " * 20_001},  # over the 100,000 characters of one item
]


def _plan(ws: Workspace, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    assert ws.run("plan", "--json") == 0
    plan: dict[str, Any] = json.loads(capsys.readouterr().out)["jobs"][0]
    return plan


def test_plan_and_apply_count_only_items_that_reach_the_provider(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    ws.write_spec(execution={"max_failure_rate": 1.0})
    ws.write_input("reviews.jsonl", SENDABLE)
    sendable_only = _plan(ws, capsys)
    ws.write_input("reviews.jsonl", [SENDABLE[0], *UNSENDABLE, *SENDABLE[1:]])
    plan = _plan(ws, capsys)
    assert (plan["total"], plan["to_send"], plan["est_requests"], plan["input_errors"]) == (6, 4, 4, 2)
    assert plan["est_tokens"] == sendable_only["est_tokens"]

    fake_provider.script(match="poison", fault="wrong_label")  # invalid twice: re-asked once
    assert ws.run("apply", "--json") == 0
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert fake_provider.count == 5
    assert (job["sent"], job["requests"]) == (4, 5)
    assert (job["completed"], job["failed"], job["input_errors"]) == (3, 1, 2)
    assert [(e["id"], e["code"]) for e in ws.errors()] == [
        ("r1", "empty_content"),
        ("r2", "item_too_large"),
        ("r3", "invalid_output"),
    ]
    assert ws.errors()[1]["message"] == "line 3: item is 100,005 characters; the limit is 100,000"


def test_the_summary_table_shows_what_was_sent(ws: Workspace, fake_provider: Any, capsys: Any) -> None:
    ws.write_spec(execution={"max_failure_rate": 1.0})
    ws.write_input("reviews.jsonl", [SENDABLE[0], UNSENDABLE[0]])
    capsys.readouterr()
    assert ws.run("apply") == 0
    line = next(row for row in capsys.readouterr().err.splitlines() if "reviews" in row and "│" in row)
    cells = [c.strip() for c in line.split("│")[1:-1]]
    # job, status, mode, items, cached, sent, completed, failed
    assert cells[3:8] == ["2", "0", "1", "1", "1"]
    assert fake_provider.count == 1
