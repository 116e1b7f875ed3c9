"""A project on disk wired to the fake provider, and `watch` running as a real process.

``WatchProcess`` reads the process's JSON log lines from stderr in a thread, so a test
can wait (with a deadline) for an event such as ``reconcile`` instead of sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.handles import REPO_ROOT

CLI = [sys.executable, "-c", "from agentflow_jobs.cli import entrypoint; entrypoint()"]
DEADLINE = 15.0


def wait_for(condition: Callable[[], Any], *, timeout: float = DEADLINE, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


class Project:
    """A temporary workspace: ``specs/``, ``data/``, outputs in ``out/``; the cwd."""

    def __init__(self, root: Path, fake: Any) -> None:
        self.root = root
        self.fake = fake
        (root / ".git").mkdir()
        (root / "specs").mkdir()
        (root / "data").mkdir()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLOW_", "OPENAI_"))}
        env.update(
            OPENAI_BASE_URL=self.fake.base_url, OPENAI_API_KEY="sk-test",
            AGENTFLOW_LOCAL_MODEL="off", AGENTFLOW_STORE=str(self.root / "store.db"),
            PYTHONPATH=str(REPO_ROOT),
        )
        return env

    def write_input(self, name: str, rows: list[dict[str, Any]], *, append: bool = False) -> Path:
        path = self.root / "data" / f"{name}.jsonl"
        with open(path, "a" if append else "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        return path

    def spec_text(self, name: str, **overrides: Any) -> str:
        spec: dict[str, Any] = {
            "apiVersion": "agentflow-jobs/v1", "kind": "Job", "name": name,
            "operation": "classify", "categories": ["positive", "negative"],
            "input": {"path": f"../data/{name}.jsonl", "id_field": "rid"},
            "output": {"path": f"../out/{name}.jsonl"}, "mode": "sync",
        }
        spec.update(overrides)
        spec = {key: value for key, value in spec.items() if value is not None}
        return yaml.safe_dump(spec, sort_keys=False)

    def write_spec(self, name: str, **overrides: Any) -> Path:
        path = self.root / "specs" / f"{name}.yaml"
        path.write_text(self.spec_text(name, **overrides))
        return path

    def output_path(self, name: str) -> Path:
        return self.root / "out" / f"{name}.jsonl"

    def output(self, name: str) -> list[dict[str, Any]]:
        path = self.output_path(name)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def sent_contents(self) -> list[str]:
        """The user message of every request the fake received, oldest first."""
        return [str(body["messages"][-1]["content"]) for body in self.fake.requests]


def rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"rid": f"r{i}", "content": f"review {i}: great"} for i in range(start, start + count)]


class WatchProcess:
    """``agentflow-jobs --log-format json watch ...`` in its own process."""

    def __init__(self, project: Project, *args: str) -> None:
        self.process = subprocess.Popen(
            [*CLI, "--log-format", "json", "watch", *args],
            cwd=project.root, env=project.env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == name]

    def reconciles(self) -> list[dict[str, Any]]:
        return self.named("reconcile")

    def wait_event(self, name: str, count: int = 1) -> list[dict[str, Any]]:
        return list(wait_for(lambda: len(self.named(name)) >= count and self.named(name),
                             what=f"{count} {name!r} event(s); stderr:\n{self.stderr}"))

    def wait_idle(self) -> None:
        """Wait until the watcher is waiting for changes again (after a reconcile)."""
        self.wait_event("watching")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self._close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close()

    def _close(self) -> None:
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_provider: Any) -> Iterator[Project]:
    monkeypatch.chdir(tmp_path)
    proj = Project(tmp_path, fake_provider)
    for name, value in proj.env().items():
        if name.startswith(("AGENTFLOW_", "OPENAI_")):
            monkeypatch.setenv(name, value)
    yield proj


@pytest.fixture
def start_watch(project: Project) -> Iterator[Callable[..., WatchProcess]]:
    started: list[WatchProcess] = []

    def start(*args: str) -> WatchProcess:
        proc = WatchProcess(project, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
