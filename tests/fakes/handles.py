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
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.fakes.provider import FakeCore, make_front

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeProvider:
    """The fake server on its own event loop in a daemon thread.

    ``front="uvicorn"`` (default) serves the ASGI app with uvicorn, as the tests should
    see it; ``front="raw"`` the bare protocol (benchmarks; tests that keep it working).
    """

    kind = "openai"  # the API it speaks (tests.fakes.anthropic: "anthropic")

    def __init__(self, *, latency_ms: float = 0.0, rpm: int | None = None, front: str = "uvicorn",
                 core: FakeCore | None = None) -> None:
        self.front = front
        self._core = core or FakeCore(latency_ms=latency_ms, rpm=rpm)
        self._server = make_front(self._core, front)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name=f"fake-provider-{front}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._failed or not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fake provider did not start ({self._failed!r})")
            time.sleep(0.005)
        self.url = f"http://{self._server.host}:{self._server.port}"
        self.base_url = f"{self.url}/v1"

    def _run(self) -> None:
        # asyncio.Runner: after serve() returns, tasks still pending are cancelled and awaited
        with asyncio.Runner() as runner:
            self._loop = runner.get_loop()
            try:
                runner.run(self._server.serve())
            except BaseException as exc:  # uvicorn exits with SystemExit when it cannot bind
                self._failed.append(exc)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop: the state is only ever touched there."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        assert self._loop is not None
        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=10)

    @property
    def count(self) -> int:
        return self._call(lambda: self._core.state.count)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._call(lambda: list(self._core.state.bodies))

    @property
    def request_headers(self) -> list[dict[str, str]]:
        return self._call(lambda: list(self._core.state.headers))

    @property
    def max_in_flight(self) -> int:
        return self._call(lambda: self._core.state.max_in_flight)

    def stats(self) -> dict[str, Any]:
        return self._call(self._core.state.stats)

    def script(self, **rule: Any) -> None:
        """Add a rule (see ``tests.fakes.provider.Rule``) or settings (rpm, rpm_window_s, ...)."""
        self._call(lambda: self._core.state.apply_script(rule))

    def reset(self) -> None:
        self._call(self._core.reset)

    def batch_script(self, **settings: Any) -> None:
        """Script the batch API (see ``tests.fakes.batches``)."""
        self._call(lambda: self._core.batches.set_script(settings))

    def batch_stats(self) -> dict[str, Any]:
        return self._call(self._core.batches.stats)

    def close(self) -> None:
        """Stop serving: hung requests are released, then the thread ends."""
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(10)


class FakeProviderProcess:
    """The fake server as a separate process (survives a killed client, has its own core).

    ``front``: "uvicorn" (default, the ASGI app) or "raw" (the bare protocol, benchmarks).
    """

    kind = "openai"
    module = "tests.fakes.provider"  # what ``python -m`` runs

    def __init__(self, *, latency_ms: float = 0.0, rpm: int | None = None, port: int = 0,
                 front: str = "uvicorn") -> None:
        self.front = front
        cmd = [sys.executable, "-m", self.module, "--port", str(port),
               "--latency-ms", str(latency_ms), "--front", front]
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

    def batch_script(self, **settings: Any) -> None:
        self._request("POST", "/_fake/batch_script", settings)

    def batch_stats(self) -> dict[str, Any]:
        return dict(self._request("GET", "/_fake/batch_stats"))

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
