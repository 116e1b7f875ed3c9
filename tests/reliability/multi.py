"""Several ``serve`` instances on one PostgreSQL store, killed while they work a batch.

Shared by ``tests/reliability/test_multi_instance.py`` and ``make chaos``
(``batch/postgres-multi``). One batch is submitted to the first instance; whichever
instance holds its lease is SIGKILLed once the provider has answered a random share of
what is left, ``kills`` times; the survivors take the lease over (the killed holder's
session, and with it its worker lock, is gone) and finish the batch. No pytest here.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from agentflow_jobs.engine.store_pg import SCHEMA
from tests.fakes.handles import FakeProviderProcess
from tests.reliability.harness import SERVER_KEY, ServeProcess

__all__ = ["MultiRun", "run_multi_instance"]

HEADERS = {"Authorization": f"Bearer {SERVER_KEY}"}


@dataclass
class MultiRun:
    """What one run showed: requests the provider got, rows kept, per-kill re-sends."""

    items: int
    instances: int
    kills: int = 0
    requests: int = 0
    rows: int = 0
    distinct_rows: int = 0
    status: str = ""
    # requests not kept, counted right after each kill (cumulative)
    lost_after_kill: list[int] = field(default_factory=list)
    holders: list[int] = field(default_factory=list)  # pids killed while holding the lease
    seconds: float = 0.0

    @property
    def resent(self) -> int:
        return self.requests - self.items


def _lease_holder(url: str, batch_id: str) -> tuple[int | None, int]:
    """The pid holding the batch's lease (None: nobody) and the rows recorded so far."""
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute(f"SELECT lease_owner FROM {SCHEMA}.batches WHERE id = %s",
                         (batch_id,)).fetchone()
        done = db.execute(f"SELECT count(*) FROM {SCHEMA}.results WHERE batch_id = %s",
                          (batch_id,)).fetchone()
    owner = row[0] if row else None
    pid = int(owner.split(":")[1]) if owner else None
    return pid, int(done[0]) if done else 0


def _wait_for_holder(url: str, batch_id: str, alive: Mapping[int, ServeProcess],
                     deadline: float) -> int:
    while time.monotonic() < deadline:
        pid, _ = _lease_holder(url, batch_id)
        if pid in alive:
            return pid
        time.sleep(0.02)
    raise RuntimeError("no live instance took the batch's lease")


def run_multi_instance(base: Path, fake: FakeProviderProcess, store_url: str,
                       provider: Mapping[str, Any], *, items: int, instances: int = 3,
                       kills: int = 2, rng: random.Random | None = None,
                       timeout: float = 300.0) -> MultiRun:
    """Submit one ``items`` batch to ``instances`` servers on ``store_url``; kill holders."""
    rng = rng or random.Random()
    servers = [ServeProcess(base, provider, store=store_url, name=f"serve-{n}")
               for n in range(instances)]
    run, started = MultiRun(items, instances), time.monotonic()
    deadline, start_count = started + timeout, fake.count
    try:
        body = {"operation": "classify", "categories": ["positive", "negative"],
                "items": [{"content": f"item {i}: great", "id": f"r{i}"} for i in range(items)]}
        created = httpx.post(f"{servers[0].url}/v1/batches", json=body, headers=HEADERS,
                             timeout=60).raise_for_status().json()
        alive = {s.proc.pid: s for s in servers if s.proc is not None}
        for _ in range(kills):
            holder = _wait_for_holder(store_url, created["id"], alive, deadline)
            run.holders.append(holder)
            _, done = _lease_holder(store_url, created["id"])
            target = fake.count + rng.randint(1, max(1, int((items - done) * 0.6)))
            while fake.count < target and time.monotonic() < deadline:
                time.sleep(0.005)
            alive.pop(holder).kill()
            run.kills += 1
            _, kept = _lease_holder(store_url, created["id"])
            run.lost_after_kill.append(fake.count - start_count - kept)
        run.status = _wait_done(next(iter(alive.values())), created["id"], deadline)
        run.rows, run.distinct_rows = _output(next(iter(alive.values())), created["id"])
        run.requests = fake.count - start_count
    finally:
        for server in servers:
            server.stop()
    run.seconds = round(time.monotonic() - started, 2)
    return run


def _wait_done(server: ServeProcess, batch_id: str, deadline: float) -> str:
    status = ""
    while time.monotonic() < deadline:
        status = httpx.get(f"{server.url}/v1/batches/{batch_id}", headers=HEADERS,
                           timeout=30).raise_for_status().json()["status"]
        if status in ("completed", "failed", "cancelled"):
            return status
        time.sleep(0.1)
    return status


def _output(server: ServeProcess, batch_id: str) -> tuple[int, int]:
    """Rows in the batch's exported output, and how many distinct indices they have."""
    text = httpx.get(f"{server.url}/v1/batches/{batch_id}/output", params={"format": "jsonl"},
                     headers=HEADERS, timeout=60).raise_for_status().text
    indices = [json.loads(line)["index"] for line in text.splitlines()]
    return len(indices), len(set(indices))
