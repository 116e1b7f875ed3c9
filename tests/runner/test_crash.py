"""Crash safety: `kill -9` the CLI at random moments; the next apply finishes the job
with every item exactly once, and the provider (a separate process that survives the
kill) saw at most the in-flight window extra per kill."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.handles import REPO_ROOT
from tests.fakes.kinds import provider_block
from tests.runner.conftest import Workspace, reviews

TOTAL = 2000
# sync: 2 chunks of 64 in flight; batch: the engine's 64 open provider requests plus the
# rows that came back in the last loop turn, waiting for their group commit (bench/chaos.py)
WINDOW = 128
CLI = [sys.executable, "-c", "from agentflow_jobs.cli import entrypoint; entrypoint()"]


@pytest.fixture
def slow_fake(fake_provider_factory: Callable[..., Any]) -> Any:
    return fake_provider_factory(latency_ms=3)


def _env(ws: Workspace, fake: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLOW_", "OPENAI_"))}
    # the fake on loopback stands for a hosted API: as self-hosted it would get 4 requests
    # at a time, and the window these tests kill into would be a sixteenth of the job's
    config = ws.root / "profiles.yaml"
    config.write_text(json.dumps({"profiles": {"local": {"engine": "embedded", "provider": provider_block(fake)}}}))
    env.update(
        AGENTFLOW_CONFIG=str(config),
        AGENTFLOW_LOCAL_MODEL="off",
        AGENTFLOW_STORE=str(ws.root / "store.db"),
        PYTHONPATH=str(REPO_ROOT),
        AGENTFLOW_LOG_FORMAT="json",
        **extra,
    )
    return env


def _start(ws: Workspace, fake: Any, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "apply", *args],
        cwd=ws.root,
        env=_env(ws, fake, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(ws: Workspace, fake: Any, *args: str, **extra: str) -> tuple[int, str]:
    proc = _start(ws, fake, *args, **extra)
    _, err = proc.communicate(timeout=90)
    return proc.returncode, err.decode()


def _assert_complete(ws: Workspace, total: int = TOTAL) -> None:
    ids = [row["id"] for row in ws.output()]
    assert ids == [f"r{i}" for i in range(total)]


def _kill_after(proc: subprocess.Popen[bytes], fake: Any, requests: int) -> bool:
    """SIGKILL once the provider has seen ``requests`` more requests; False if it finished."""
    target = fake.count + requests
    while proc.poll() is None:
        if fake.count >= target:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            return True
        time.sleep(0.01)
    proc.communicate(timeout=30)
    return False


@pytest.mark.parametrize("mode", ["sync", "batch"])
def test_kill_9_at_random_points_then_resume(ws: Workspace, slow_fake: Any, mode: str) -> None:
    ws.write_input("reviews.jsonl", reviews(TOTAL))
    ws.write_spec(mode=mode, execution={"batch_size": 500})
    rng = random.Random(mode)
    kills = sum(
        _kill_after(_start(ws, slow_fake), slow_fake, rng.randint(100, 600)) for _ in range(3)
    )
    assert kills >= 2
    code, err = _finish(ws, slow_fake)
    assert code == 0, err
    _assert_complete(ws)
    assert TOTAL <= slow_fake.count <= TOTAL + kills * WINDOW


@pytest.mark.parametrize(
    ("point", "mode"),
    [
        ("before_ledger_commit:3", "sync"),
        ("after_ledger_commit:3", "sync"),
        ("after_submit:2", "batch"),
        ("before_ledger_commit:2", "batch"),
    ],
)
def test_crash_points_lose_nothing(ws: Workspace, slow_fake: Any, point: str, mode: str) -> None:
    total = 600  # the crash is deterministic here: fewer items prove the same thing
    ws.write_input("reviews.jsonl", reviews(total))
    ws.write_spec(mode=mode, execution={"batch_size": 200})
    code, _ = _finish(ws, slow_fake, AGENTFLOW_CRASH_AT=point)
    assert code == 137
    code, err = _finish(ws, slow_fake)
    assert code == 0, err
    _assert_complete(ws, total)
    assert total <= slow_fake.count <= total + WINDOW


def test_previous_output_survives_a_crash_mid_write(ws: Workspace, slow_fake: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(50))
    ws.write_spec()
    assert _finish(ws, slow_fake)[0] == 0
    before = (ws.root / "out" / "reviews.jsonl").read_bytes()
    ws.write_input("reviews.jsonl", reviews(10, start=50), append=True)
    code, _ = _finish(ws, slow_fake, AGENTFLOW_CRASH_AT="mid_output_write")
    assert code == 137
    assert (ws.root / "out" / "reviews.jsonl").read_bytes() == before
    assert _finish(ws, slow_fake)[0] == 0
    assert len(ws.output()) == 60
    assert sorted(p.name for p in (ws.root / "out").iterdir()) == ["reviews.jsonl"]
    assert slow_fake.count == 60


def test_sigint_stops_cleanly_keeps_results_and_exits_130(
    ws: Workspace, fake_provider_factory: Callable[..., Any]
) -> None:
    # 32 items in flight at 50 ms: the run takes seconds, so the signal lands mid-way
    slow_fake = fake_provider_factory(latency_ms=50)
    ws.write_input("reviews.jsonl", reviews(TOTAL))
    ws.write_spec(execution={"concurrency": 16, "chunk_size": 16})
    proc = _start(ws, slow_fake)
    deadline = time.monotonic() + 30
    state_ready = ws.state.exists()
    while not state_ready and time.monotonic() < deadline:
        time.sleep(0.05)
        state_ready = ws.state.exists()
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    partial = ws.output()
    assert 0 < len(partial) < TOTAL
    sent_before = slow_fake.count
    assert len(partial) >= sent_before - WINDOW
    code, err_text = _finish(ws, slow_fake)
    assert code == 0, err_text
    _assert_complete(ws)
    assert slow_fake.count <= TOTAL + WINDOW
