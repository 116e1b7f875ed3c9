"""Handles on a running fake provider: in a background thread, or in its own process.

Both expose the same surface: ``base_url`` (ends in ``/v1``), ``url``, ``count``,
``requests`` (parsed JSON bodies, most recent last, bounded), ``stats()``,
``script(**rule)``, ``reset()``, ``close()``. No pytest here, so benchmarks can use them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.fakes.provider import FakeProviderServer

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeProvider:
    """The fake server running on its own event loop in a daemon thread."""

    def __init__(self, *, latency_ms: float = 0.0, rpm: int | None = None) -> None:
        self._server = FakeProviderServer(latency_ms=latency_ms, rpm=rpm)
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="fake-provider", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake provider did not start")

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._server.start())
        started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._server.close())
        self._loop.close()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop: the state is only ever touched there."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=10)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def count(self) -> int:
        return self._call(lambda: self._server.state.count)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._call(lambda: list(self._server.state.bodies))

    @property
    def request_headers(self) -> list[dict[str, str]]:
        return self._call(lambda: list(self._server.state.headers))

    @property
    def max_in_flight(self) -> int:
        return self._call(lambda: self._server.state.max_in_flight)

    def stats(self) -> dict[str, Any]:
        return self._call(self._server.state.stats)

    def script(self, **rule: Any) -> None:
        """Add a rule (see ``tests.fakes.provider.Rule``) or settings (rpm, rpm_window_s, ...)."""
        self._call(lambda: self._server.state.apply_script(rule))

    def reset(self) -> None:
        self._call(self._server.state.reset)

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


class FakeProviderProcess:
    """The fake server as a separate process (survives a killed client, has its own core)."""

    def __init__(self, *, latency_ms: float = 0.0, rpm: int | None = None, port: int = 0) -> None:
        cmd = [sys.executable, "-m", "tests.fakes.provider", "--port", str(port),
               "--latency-ms", str(latency_ms)]
        if rpm:
            cmd += ["--rpm", str(rpm)]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("http"):
            self.process.kill()
            raise RuntimeError(f"fake provider process did not start (said {line!r})")
        self.base_url = line
        self.url = line.removesuffix("/v1")

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as response:
            return json.loads(response.read())

    @property
    def count(self) -> int:
        return int(self.stats()["requests"])

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/_fake/requests"))

    @property
    def max_in_flight(self) -> int:
        return int(self.stats()["max_in_flight"])

    def stats(self) -> dict[str, Any]:
        return dict(self._request("GET", "/_fake/stats"))

    def script(self, **rule: Any) -> None:
        self._request("POST", "/_fake/script", rule)

    def reset(self) -> None:
        self._request("POST", "/_fake/reset", {})

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> FakeProviderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
