"""The PostgreSQL configurations of `make chaos`.

- ``sync/postgres``: the soak's sync rounds with the runner's state in PostgreSQL
  (``AGENTFLOW_STATE`` = a database made for the run, a workspace key per job): a kill -9
  of the apply must lose nothing, duplicate nothing and re-send at most the window, as
  with the state file; and the killed holder's lock must not hold up the next round.
- ``batch/postgres-multi``: three ``serve`` instances on one PostgreSQL store work one
  5,000-item batch; the instance holding its lease is killed twice at random points and
  the survivor finishes it (``tests/reliability/multi.py``). Per run: rows lost and
  duplicated (from the export), requests re-sent against the window per kill.

The server is ``$AGENTFLOW_TEST_PG`` (else ``postgresql://postgres@127.0.0.1:5432/test``);
each run creates its own database and drops it afterwards.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg

from agentflow_jobs.runner.state_pg import schema_for
from tests.fakes.handles import FakeProviderProcess
from tests.postgres import fresh_database
from tests.reliability.multi import run_multi_instance

__all__ = ["MULTI", "SYNC", "ledger_rows", "multi_figures", "pg_database", "state_env"]

SYNC = ("sync", "postgres")
MULTI = "batch/postgres-multi"


@contextlib.contextmanager
def pg_database(wanted: bool) -> Iterator[str | None]:
    """A database for this chaos run (None when no PostgreSQL configuration runs)."""
    if not wanted:
        yield None
        return
    with fresh_database() as url:
        yield url


def _key(number: int) -> str:
    return f"chaos-sync-{number}"


def state_env(url: str, number: int) -> dict[str, str]:
    """The environment that puts job ``number``'s state in PostgreSQL."""
    return {"AGENTFLOW_STATE": url, "AGENTFLOW_STATE_KEY": _key(number)}


def ledger_rows(url: str, number: int, job: str) -> int:
    """Rows of ``job`` in job ``number``'s ledger (0 before its first commit)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as db:
            row = db.execute(f"SELECT count(*) FROM {schema_for(_key(number))}.ledger WHERE job = %s",
                             (job,)).fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def multi_figures(base: Path, fake: FakeProviderProcess, provider: dict[str, Any],
                  *, runs: int, items: int, window: int, rng: random.Random) -> dict[str, Any]:
    """``runs`` multi-instance runs of ``items`` each, two kills per run, and the verdict."""
    done = []
    for number in range(runs):
        root = base / f"multi-{number}"
        root.mkdir()
        with fresh_database() as store:
            run = run_multi_instance(root, fake, store, provider, items=items, instances=3,
                                     kills=2, rng=rng, timeout=600)
        done.append(asdict(run) | {"resent": run.resent})
        print(f"  {MULTI} run {number}: {done[-1]}", file=sys.stderr, flush=True)
    lost = sum(r["items"] - r["distinct_rows"] for r in done)
    duplicated = sum(r["rows"] - r["distinct_rows"] for r in done)
    over = [r for r in done if r["resent"] > r["kills"] * window]
    return {
        "runs": done, "kills": sum(r["kills"] for r in done), "items_lost_total": lost,
        "items_duplicated_total": duplicated, "window_per_kill": window,
        "max_resent_per_run": max((r["resent"] for r in done), default=0),
        "runs_over_window": over,
        "ok": bool(done) and not lost and not duplicated and not over
        and all(r["status"] == "completed" for r in done),
    }
