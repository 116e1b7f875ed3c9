"""The state interface, the same cases on both backends: a SQLite file and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentflow_jobs.errors import LockedError, StateError
from agentflow_jobs.runner import PgLocation, StateLocation, open_state
from agentflow_jobs.runner.backend import state_lock
from agentflow_jobs.runner.ledger import Ledger
from agentflow_jobs.runner.state import SCHEMA_VERSION, JobRecord
from agentflow_jobs.runner.state_pg import schema_for


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> StateLocation:
    if request.param == "sqlite":
        return tmp_path / ".agentflow" / "state.db"
    url: str = request.getfixturevalue("pg_url")
    return PgLocation(url, "github.com/acme/specs")


def _row(label: str, tokens: int = 10, cost: float | None = 0.5, status: str = "completed") -> Any:
    usage = {"total_tokens": tokens, "requests": 1, "cost_usd": cost}
    return {"index": 0, "id": None, "status": status, "result": {"label": label},
            "error": None if status == "completed" else {"code": "bad_request", "message": "no"},
            "usage": usage}


def test_the_ledger_keeps_answers_and_counts_re_sends(location: StateLocation) -> None:
    with open_state(location) as state:
        ledger = Ledger(state)
        assert ledger.commit("j", "sync", [("k1", 0, _row("a")), ("k2", 1, _row("b"))]) == 2
        ledger.commit("j", "batch", [("k1", 0, _row("c", tokens=5))])
    with open_state(location) as state:  # reopened: what was committed is there
        ledger = Ledger(state)
        found = ledger.lookup(["k1", "k2", "k3"])
        assert set(found) == {"k1", "k2"}
        assert found["k1"].row["result"] == {"label": "c"} and found["k1"].attempts == 2
        assert found["k1"].mode == "batch"
        assert set(ledger.statuses(["k2", "nope"])) == {"k2"}
        assert ledger.job_counts("j") == {"completed": 2, "failed": 0, "retryable": 0, "tokens": 25}
        assert ledger.job_cost("j") == pytest.approx(1.5)


def test_an_unpriced_answer_makes_the_job_cost_unknown(location: StateLocation) -> None:
    with open_state(location) as state:
        Ledger(state).commit("j", "sync", [("k1", 0, _row("a")), ("k2", 1, _row("b", cost=None))])
        assert Ledger(state).job_cost("j") is None


def test_job_records_and_runs(location: StateLocation) -> None:
    record = JobRecord("j", "h1", "in", "out", "/o.jsonl", 12.5, "run_1", "ok", {"total": 3})
    with open_state(location) as state:
        assert state.job("j") is None
        state.record_job(record)
        state.record_job(record)  # an upsert, not a second row
        state.start_run("run_1", "apply")
        assert state.running(os.getpid(), os.uname().nodename) == "run_1"
        state.finish_run("run_1", "done", 0.25)
        assert state.running(os.getpid(), os.uname().nodename) is None
    with open_state(location) as state:
        assert state.job("j") == record


def test_batch_records_reserve_their_keys_until_collected(location: StateLocation) -> None:
    items = [{"content": "a"}, {"content": "b"}]
    with open_state(location) as state:
        first = state.add_batch_intent("j", 0, "idem-0", ["k1", "k2"], items, "run_1")
        second = state.add_batch_intent("j", 1, "idem-1", ["k3"], items[:1], "run_1")
        assert second.seq > first.seq
        assert first.items(state) == items
        assert state.keys_in_open_batches(["k1", "k3", "k9"]) == {"k1", "k3"}
        state.update_batch(first.seq, status="running", batch_id="batch_1", completed=1)
        (open_first, _) = state.batches("j", open_only=True)
        assert open_first.batch_id == "batch_1" and open_first.completed == 1
        state.update_batch(first.seq, status="collected:completed")
        assert [b.seq for b in state.batches("j", open_only=True)] == [second.seq]
        assert len(state.batches()) == 2
        assert state.keys_in_open_batches(["k1", "k3"]) == {"k3"}
        assert first.items(state) == []


def test_a_failed_transaction_leaves_nothing(location: StateLocation) -> None:
    with open_state(location) as state:
        with pytest.raises(RuntimeError), state.transaction():
            state.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
            raise RuntimeError("boom")
        assert state.query("SELECT value FROM meta WHERE key = 'x'") == []


def test_the_lock_waits_up_to_the_timeout_and_names_the_holder(location: StateLocation) -> None:
    holder = state_lock(location, command="watch")
    holder.acquire()
    waiter = state_lock(location)
    with pytest.raises(LockedError) as info:
        waiter.acquire(timeout=0.1)
    assert info.value.holder["pid"] == os.getpid()
    assert "watch" in str(info.value)
    assert waiter.probe() == holder.probe() and (waiter.probe() or {})["command"] == "watch"
    holder.release()
    assert waiter.probe() is None
    waiter.acquire(timeout=0.1)
    assert waiter.held
    waiter.release()


def _set_version(location: StateLocation, version: int) -> None:
    sql = "UPDATE meta SET value = %s WHERE key = 'schema_version'"
    if isinstance(location, PgLocation):
        with psycopg.connect(location.url, autocommit=True) as db:
            db.execute(sql.replace("meta", f"{schema_for(location.key)}.meta"), (str(version),))
        return
    import sqlite3

    db = sqlite3.connect(location)
    db.execute(sql.replace("%s", "?"), (str(version),))
    db.commit()
    db.close()


def test_a_newer_schema_is_refused(location: StateLocation) -> None:
    with open_state(location) as state:
        assert state.version() == SCHEMA_VERSION
    _set_version(location, SCHEMA_VERSION + 1)
    with pytest.raises(StateError, match="newer"):
        open_state(location)


def test_workspaces_in_one_database_are_apart(pg_url: str) -> None:
    with open_state(PgLocation(pg_url, "one")) as one, open_state(PgLocation(pg_url, "two")) as two:
        Ledger(one).commit("j", "sync", [("k1", 0, _row("a"))])
        assert Ledger(two).lookup(["k1"]) == {}
    with state_lock(PgLocation(pg_url, "one")) as lock_one, state_lock(PgLocation(pg_url, "two")):
        assert lock_one.held  # two workspaces never wait for each other


def test_an_unreachable_database_is_a_state_error(tmp_path: Path) -> None:
    url = "postgresql://agent:s3cr3t@127.0.0.1:1/nowhere"
    with pytest.raises(StateError) as info:
        open_state(PgLocation(url, "k"))
    assert "postgresql://127.0.0.1:1/nowhere: cannot connect" in str(info.value)
    assert "s3cr3t" not in str(info.value)

