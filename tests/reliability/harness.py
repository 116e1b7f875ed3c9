"""Subprocess harness shared by the reliability tests and `make chaos`.

A ``Project`` is a workspace on disk (``.git`` marker, ``specs/``, ``data/``, a
profiles file) whose CLI runs as a real subprocess, so it can be killed with SIGKILL
while the fake provider (its own process) keeps counting. ``ServeProcess`` runs
``agentflow-jobs serve`` the same way. No pytest here: the chaos benchmark imports it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.handles import REPO_ROOT
from tests.server.live import wait_healthy

CLI = [sys.executable, "-c", "from agentflow_jobs.cli import entrypoint; entrypoint()"]
SERVER_KEY = "chaos-server-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def review_rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    words = ("great", "awful", "fine", "good", "bad")
    return [{"rid": f"r{i}", "content": f"review {i}: the product is {words[i % len(words)]}"}
            for i in range(start, start + count)]


def clean_env(**extra: str) -> dict[str, str]:
    """The parent environment without AGENTFLOW_*/OPENAI_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLOW_", "OPENAI_"))}
    env.update(PYTHONPATH=str(REPO_ROOT), AGENTFLOW_LOCAL_MODEL="off", **extra)
    return env


@dataclass
class Outcome:
    """A finished CLI subprocess."""

    code: int
    stdout: str
    stderr: str
    seconds: float


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


class Project:
    """A workspace with one job ``name`` whose CLI runs as a subprocess."""

    def __init__(self, root: Path, provider: Mapping[str, Any], *, name: str = "reviews",
                 remote_url: str | None = None) -> None:
        self.root, self.name = root, name
        for folder in (".git", "specs", "data"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self.state = root / ".agentflow" / "state.db"
        self.store = root / "store.db"
        self.profiles = root / "profiles.yaml"
        profiles: dict[str, Any] = {
            "local": {"engine": "embedded", "store": str(self.store), "provider": dict(provider)}}
        if remote_url is not None:
            profiles["remote"] = {"base_url": remote_url, "api_key": SERVER_KEY, "timeout": 30}
        self.profiles.write_text(yaml.safe_dump({"profiles": profiles}))
        self.env_extra: dict[str, str] = {"AGENTFLOW_CONFIG": str(self.profiles),
                                          "AGENTFLOW_LOG_FORMAT": "json"}

    @property
    def input_path(self) -> Path:
        return self.root / "data" / f"{self.name}.jsonl"

    @property
    def output_path(self) -> Path:
        return self.root / "out" / f"{self.name}.jsonl"

    @property
    def errors_path(self) -> Path:
        return self.root / "out" / f"{self.name}.errors.jsonl"

    def write_input(self, rows: list[dict[str, Any]], *, tail: str = "") -> None:
        with open(self.input_path, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
            handle.write(tail)

    def write_spec(self, **overrides: Any) -> Path:
        spec: dict[str, Any] = {
            "apiVersion": "agentflow-jobs/v1", "kind": "Job", "name": self.name,
            "operation": "classify", "categories": ["positive", "negative"],
            "input": {"path": f"../data/{self.name}.jsonl", "id_field": "rid"},
            "output": {"path": f"../out/{self.name}.jsonl"}, "mode": "sync",
        }
        spec.update(overrides)
        path = self.root / "specs" / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def start(self, *args: str, fsize_limit: int | None = None,
              **extra: str) -> subprocess.Popen[bytes]:
        """Start the CLI (``apply`` unless ``args`` says otherwise) in the workspace."""
        argv = list(args) or ["apply"]
        return subprocess.Popen(
            [*CLI, *argv], cwd=self.root, env=clean_env(**self.env_extra, **extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_limit_file_size(fsize_limit) if fsize_limit else None,
        )

    def run(self, *args: str, timeout: float = 300, fsize_limit: int | None = None,
            env: Mapping[str, str] | None = None, **extra: str) -> Outcome:
        started = time.monotonic()
        proc = self.start(*args, fsize_limit=fsize_limit, **{**(env or {}), **extra})
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return Outcome(-9, out.decode(errors="replace"),
                           err.decode(errors="replace") + "\n[harness: timed out]",
                           time.monotonic() - started)
        return Outcome(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                       time.monotonic() - started)

    def output_ids(self) -> list[str]:
        if not self.output_path.exists():
            return []
        return [json.loads(line)["id"] for line in self.output_path.read_text().splitlines()]

    def error_rows(self) -> list[dict[str, Any]]:
        if not self.errors_path.exists():
            return []
        return [json.loads(line) for line in self.errors_path.read_text().splitlines()]

    def ledger_rows(self) -> int:
        """Rows of this job in the state file's ledger (0 when there is no state yet)."""
        if not self.state.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=10) as db:
                row = db.execute("SELECT count(*) FROM ledger WHERE job = ?", (self.name,)).fetchone()
        except sqlite3.Error:
            return 0
        return int(row[0])


def count_lost_and_duplicated(ids: list[str], expected: list[str]) -> tuple[int, int]:
    counts = Counter(ids)
    lost = sum(1 for key in expected if key not in counts)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    return lost, duplicated


class ServeProcess:
    """``agentflow-jobs serve`` as a subprocess on a store (file or URL), with one API key."""

    def __init__(self, root: Path, provider: Mapping[str, Any], *, port: int | None = None,
                 store: str | Path | None = None, name: str = "serve") -> None:
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.profiles = root / f"{name}-profiles.yaml"
        self.profiles.write_text(yaml.safe_dump({"profiles": {"local": {"provider": dict(provider)}}}))
        # a file of its own, or a postgresql:// URL several instances share
        self.store: Any = store if store is not None else root / f"{name}-store.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        env = clean_env(AGENTFLOW_CONFIG=str(self.profiles), AGENTFLOW_API_KEYS=SERVER_KEY,
                        AGENTFLOW_LOG_FORMAT="json")
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port), "--store", str(self.store)],
            cwd=self.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if not wait_healthy(self.url, self.proc, 30):
            self.stop()
            raise RuntimeError(f"serve did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight items are left for the restart."""
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
