"""A server killed mid-batch finishes the batch after a restart, sending each item once.

``agentflow-jobs serve`` runs as a real subprocess on a store file; the provider is the
fake in its own process, so it keeps counting across the server's death.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fakes.handles import FakeProviderProcess
from tests.server.live import wait_healthy

CONCURRENCY = 8
TOTAL = 120
KEY = {"Authorization": "Bearer key-a"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    def __init__(self, tmp_path: Path, fake: FakeProviderProcess, port: int) -> None:
        profiles = tmp_path / "profiles.yaml"
        provider = {"type": "openai", "base_url": fake.base_url, "api_key": "sk-test",
                    "model": "fake-model", "concurrency": CONCURRENCY}
        profiles.write_text(yaml.safe_dump({"profiles": {"local": {"provider": provider}}}))
        env = {**os.environ, "AGENTFLOW_CONFIG": str(profiles), "AGENTFLOW_API_KEYS": "key-a"}
        script = Path(sys.executable).with_name("agentflow-jobs")
        command = [str(script)] if script.exists() else [
            sys.executable, "-c", "from agentflow_jobs.cli import entrypoint; entrypoint()"]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--store", str(tmp_path / "store.db")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        if not wait_healthy(self.url, self.proc, 20):
            raise RuntimeError(f"serve did not start: {self.stop()}")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")


@pytest.fixture
def fake() -> Iterator[FakeProviderProcess]:
    with FakeProviderProcess(latency_ms=100) as process:
        yield process


def progress(url: str, batch_id: str) -> dict[str, object]:
    batch: dict[str, object] = httpx.get(f"{url}/v1/batches/{batch_id}", headers=KEY).json()
    return batch


def stop_when(server: ServeProcess, batch_id: str, completed: int, sig: int) -> None:
    """Stop ``server`` with ``sig`` once ``completed`` items are done."""
    try:
        deadline = time.monotonic() + 20
        while progress(server.url, batch_id)["progress"]["completed"] < completed:  # type: ignore[index]
            assert time.monotonic() < deadline, "the batch made no progress"
            time.sleep(0.02)
    finally:
        server.stop(sig)


def test_batch_completes_after_sigterm_and_kill_9_with_each_item_once(
    tmp_path: Path, fake: FakeProviderProcess
) -> None:
    port = free_port()
    first = ServeProcess(tmp_path, fake, port)
    items = [{"content": f"item {i} is good", "n": str(i)} for i in range(TOTAL)]
    body = {"operation": "label", "categories": ["positive", "negative"], "items": items,
            "id_field": "n"}
    batch = httpx.post(f"{first.url}/v1/batches", json=body, headers=KEY, timeout=10).json()
    stop_when(first, batch["id"], 30, signal.SIGTERM)  # graceful: in-flight items stay queued
    second = ServeProcess(tmp_path, fake, port)
    stop_when(second, batch["id"], 70, signal.SIGKILL)  # no warning at all
    assert fake.count < TOTAL, "the batch finished before the server was killed"

    third = ServeProcess(tmp_path, fake, port)
    try:
        deadline = time.monotonic() + 30
        while (status := progress(third.url, batch["id"]))["status"] != "completed":
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert status["progress"] == {"completed": TOTAL, "failed": 0, "total": TOTAL}
        text = httpx.get(f"{third.url}/v1/batches/{batch['id']}/output",
                         params={"format": "jsonl"}, headers=KEY).text
    finally:
        third.stop()
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["index"] for r in rows] == list(range(TOTAL))
    assert [r["id"] for r in rows] == [str(i) for i in range(TOTAL)]
    # each stop re-sends at most what was in flight; kill -9 may also lose the rows that
    # finished within the last flush interval (100 ms ≈ 8 rows at this pace)
    assert fake.count <= TOTAL + 2 * CONCURRENCY + 8, fake.count
