"""The runner's state and the service store on PostgreSQL vs SQLite, in the same run.

Figures (``python -m bench state``; ``--quick`` or AGENTFLOW_BENCH_QUICK=1 for fewer items):

- ``ledger``: rows committed per second through ``Ledger.commit``, in blocks of 256 (the
  bench job's chunk: the runner commits one transaction per chunk), and keys looked up
  per second through ``Ledger.statuses`` (what ``plan`` does per item), per backend;
- ``store``: result rows recorded per second through the batch store's ``record`` in
  groups of 50 (the workers' ``flush_rows``), per backend;
- ``apply``: items/s of a first ``agentflow-jobs apply`` (sync, classify, the
  zero-latency fake; ``bench.runner``'s workspace) with the state in a file and with
  ``--state postgresql://…``, and the seconds of the re-apply that sends nothing.

PostgreSQL is ``$AGENTFLOW_TEST_PG`` (else the local server, trust auth): a database is
created for the run and dropped after it. ``ratio`` = PostgreSQL / SQLite.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentflow_jobs.engine.store_pg import open_store
from agentflow_jobs.runner import PgLocation, open_state
from agentflow_jobs.runner.ledger import Ledger
from agentflow_jobs.wire import ResultRow
from bench.runner import _run, _workspace
from tests.fakes.handles import FakeProviderProcess
from tests.postgres import fresh_database

BLOCK = 256
FLUSH = 50


def _row(i: int) -> ResultRow:
    usage = {"prompt_tokens": 60, "completion_tokens": 8, "total_tokens": 68, "requests": 1,
             "cost_usd": 0.0000123}
    return ResultRow(index=i, id=f"r{i}", status="completed",
                     result={"label": "positive", "confidence": 0.93}, error=None, usage=usage)


def _rate(count: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return round(count / (time.perf_counter() - started))


def ledger_figures(location: Path | PgLocation, rows: int) -> dict[str, Any]:
    keys = [f"{i:064x}" for i in range(rows)]
    with open_state(location) as state:
        ledger = Ledger(state)

        def commit() -> None:
            for start in range(0, rows, BLOCK):
                block = [(keys[i], i, _row(i)) for i in range(start, min(rows, start + BLOCK))]
                ledger.commit("bench", "sync", block, run_id="bench")

        committed = _rate(rows, commit)
        looked_up = _rate(rows, lambda: ledger.statuses(keys))
    return {"rows": rows, "rows_committed_per_s": committed, "keys_looked_up_per_s": looked_up}


def store_figures(location: str | Path, rows: int) -> dict[str, Any]:
    store = open_store(location)
    try:
        batch_id, _ = store.create(owner="bench", request={"operation": "label"},
                                   items=[{"content": f"item {i}"} for i in range(rows)],
                                   model="m", metadata={})

        def record() -> None:
            for start in range(0, rows, FLUSH):
                store.record(batch_id, [_row(i) for i in range(start, min(rows, start + FLUSH))])

        return {"rows": rows, "rows_recorded_per_s": _rate(rows, record)}
    finally:
        store.close()


def apply_figures(count: int, fake: FakeProviderProcess, state: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        root = Path(tmp)
        env = _workspace(root, count, fake)
        if state is not None:
            env.update(AGENTFLOW_STATE=state, AGENTFLOW_STATE_KEY=f"bench-{time.time_ns()}")
        fake.reset()
        seconds, _, code = _run(root, env, "apply")
        again, _, again_code = _run(root, env, "apply")
        return {"items": count, "exit_code": code, "items_per_s": round(count / seconds),
                "seconds": round(seconds, 2), "requests": fake.count,
                "reapply_s": round(again, 2), "reapply_exit_code": again_code}


def _ratio(pg: dict[str, Any], sqlite: dict[str, Any], key: str) -> float:
    return round(pg[key] / sqlite[key], 3) if sqlite.get(key) else 0.0


def measure(quick: bool) -> dict[str, Any]:
    rows, items = (20_000, 10_000) if quick else (100_000, 50_000)
    figures: dict[str, Any] = {"quick": quick}
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp, fresh_database() as url:
        sqlite = ledger_figures(Path(tmp) / "state.db", rows)
        pg = ledger_figures(PgLocation(url, "bench-ledger"), rows)
        figures["ledger"] = {"sqlite": sqlite, "postgresql": pg,
                             "ratio": _ratio(pg, sqlite, "rows_committed_per_s")}
        sqlite, pg = store_figures(Path(tmp) / "store.db", rows), store_figures(url, rows)
        figures["store"] = {"sqlite": sqlite, "postgresql": pg,
                            "ratio": _ratio(pg, sqlite, "rows_recorded_per_s")}
        with FakeProviderProcess(latency_ms=0, front="raw") as fake:
            sqlite, pg = apply_figures(items, fake, None), apply_figures(items, fake, url)
        figures["apply"] = {"sqlite": sqlite, "postgresql": pg,
                            "ratio": _ratio(pg, sqlite, "items_per_s")}
    codes = [figures["apply"][b][k] for b in ("sqlite", "postgresql")
             for k in ("exit_code", "reapply_exit_code")]
    figures["failures"] = [f"an apply exited {c}" for c in codes if c != 0]
    figures["ok"] = not figures["failures"]
    return figures


def run(quick: bool | None = None) -> dict[str, Any]:
    """The figures for ``python -m bench`` (``ok``: every apply exited 0)."""
    quick = bool(os.environ.get("AGENTFLOW_BENCH_QUICK")) if quick is None else quick
    return measure(quick)


if __name__ == "__main__":
    result = measure("--quick" in sys.argv or bool(os.environ.get("AGENTFLOW_BENCH_QUICK")))
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["ok"] else 1)
