"""A live AgentFlow server for tests: uvicorn in a thread on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from fastapi import FastAPI

from agentflow_jobs.server import create_app


class LiveServer:
    """Runs ``app`` until ``stop()``; ``url`` is its root (``http://127.0.0.1:PORT``)."""

    def __init__(self, app: FastAPI, port: int = 0) -> None:
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()


def provider_config(base_url: str, kind: str = "openai", **extra: Any) -> dict[str, Any]:
    """A provider block for a fake's ``base_url``; ``kind`` "anthropic" for the Anthropic fake."""
    if kind == "anthropic":
        extra = {"type": "anthropic", "model": "claude-haiku-4-5", "self_hosted": False, **extra}
    return {"type": "openai", "base_url": base_url, "api_key": "sk-test", "model": "fake-model",
            "max_attempts": 2, "concurrency": 4, **extra}


@contextmanager
def live_server(
    fake_base_url: str, store: Path, *, api_keys: tuple[str, ...] = ("key-a", "key-b"),
    kind: str = "openai", **options: Any,
) -> Iterator[LiveServer]:
    app = create_app(provider_config=provider_config(fake_base_url, kind), store_path=store,
                     api_keys=api_keys, **options)
    server = LiveServer(app)
    try:
        yield server
    finally:
        server.stop()


def write_profiles(path: Path, profiles: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"profiles": dict(profiles)}), encoding="utf-8")
    return path


def embedded_profile(fake_base_url: str, store: Path, kind: str = "openai") -> dict[str, Any]:
    return {"engine": "embedded", "store": str(store), "provider": provider_config(fake_base_url, kind)}


def http_profile(server: LiveServer, api_key: str = "key-a") -> dict[str, Any]:
    return {"base_url": server.url, "api_key": api_key}


def wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Poll ``url``/healthz until a ``serve`` subprocess answers; False when it exited or
    did not answer within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
