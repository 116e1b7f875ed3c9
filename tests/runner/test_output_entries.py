"""The output of an apply takes the rows it recorded for new keys as it recorded them,
without reading them back from the ledger: the files must be byte for byte those written
from the ledger alone, provenance (attempts, run, mode, usage) included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentflow_jobs.runner.backend import open_state
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.output import write_output
from agentflow_jobs.spec.load import load_specs
from tests.runner.conftest import Workspace, reviews


def _files(ws: Workspace, fmt: str) -> tuple[bytes, bytes]:
    out = ws.root / "out"
    return (out / f"reviews.{fmt}").read_bytes(), (out / "reviews.errors.jsonl").read_bytes()


def _input(ws: Workspace) -> None:
    """600 reviews: one in 40 refused by the provider, one in 50 unanswered (503), a
    repeated row and two broken lines."""
    rows = reviews(600)
    for i in range(0, 600, 40):
        rows[i]["content"] = f"review {i}: refuse this one"
    for i in range(5, 600, 50):
        rows[i]["content"] = f"review {i}: the provider is down for this one"
    lines = [json.dumps(row) for row in rows] + [json.dumps(rows[7])]
    lines.insert(100, '{"rid": "broken", "content": ')
    lines.insert(400, "not json")
    (ws.root / "data" / "reviews.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_apply_writes_what_the_ledger_holds(ws: Workspace, fake_provider: Any, fmt: str) -> None:
    ws.write_spec(
        output={"path": f"../out/reviews.{fmt}", "format": fmt, "include_provenance": True},
        execution={"concurrency": 16, "max_failure_rate": 1.0, "max_attempts": 1},
    )
    ws.write_input("reviews.jsonl", reviews(200))
    assert ws.run("apply") == 0  # r0..r199 answered before: read back from the ledger
    _input(ws)
    fake_provider.script(match="refuse this one", status=400)
    fake_provider.script(match="the provider is down", status=503)
    assert ws.run("apply") == 0  # failures within max_failure_rate: the output is written
    fake_provider.reset()
    fake_provider.script(match="refuse this one", status=400)
    # the 503s were kept as retryable: sent again (their second attempt), now answered
    ws.write_spec(
        output={"path": f"../out/reviews.{fmt}", "format": fmt, "include_provenance": True},
        execution={"concurrency": 16, "max_failure_rate": 1.0, "max_attempts": 1, "chunk_size": 17},
    )
    (ws.root / "data" / "reviews.jsonl").write_text(
        (ws.root / "data" / "reviews.jsonl").read_text() + json.dumps(reviews(1, start=600)[0]) + "\n"
    )
    assert ws.run("apply") == 0
    assert fake_provider.count == 12 + 1  # the 12 retryable rows and the new one
    applied = _files(ws, fmt)
    if fmt == "jsonl":  # a row sent again is read back: both attempt counts are written
        assert {row["provenance"]["attempts"] for row in ws.output()} == {1, 2}

    (job,) = [Job.from_spec(spec) for spec in load_specs([ws.root / "specs"])]
    with open_state(ws.state) as state:
        summary = write_output(job, state)  # from the ledger alone, the input read again
    assert _files(ws, fmt) == applied
    # 601 reviews and the repeated one, less the 15 refused; the two broken lines
    assert (summary.completed, summary.input_errors) == (602 - 15, 2)


def test_the_output_reads_back_only_what_it_was_not_given(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first apply of 300 new rows reads none of them back from the ledger."""
    from agentflow_jobs.runner import ledger

    ws.write_spec(execution={"concurrency": 16})
    ws.write_input("reviews.jsonl", reviews(300))
    looked_up: list[int] = []
    lookup = ledger.Ledger.lookup

    def counting(self: ledger.Ledger, keys: Any) -> Any:
        looked_up.append(len(keys))
        return lookup(self, keys)

    monkeypatch.setattr(ledger.Ledger, "lookup", counting)
    assert ws.run("apply") == 0
    assert len(ws.output()) == 300
    assert sum(looked_up) == 0
    Path(ws.root / "data" / "reviews.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in reviews(301))
    )
    looked_up.clear()
    assert ws.run("apply") == 0
    assert len(ws.output()) == 301
    assert sum(looked_up) == 300  # the earlier answers are read back, the new one is not
