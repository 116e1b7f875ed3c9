"""A llama-cpp-python server (``python -m llama_cpp.server``) with the packaged Gemma 3
270M model, one per test session (the ``llama_server`` fixture, registered in conftest),
on a free loopback port at the server's default context of 2,048 tokens, killed at the
end. The requests it received are counted from its access log.
"""

from __future__ import annotations

import importlib
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

_ACCESS = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" (\d{3})')
START_S = 90.0


class LlamaServer:
    """A running ``llama_cpp.server`` subprocess and its log."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.process, self.base_url, self.log = process, base_url, log

    def statuses(self) -> list[int]:
        """The status of every chat request the server has answered so far, in order."""
        return [int(s) for s in _ACCESS.findall(self.log.read_text(errors="replace"))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(server: LlamaServer) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {server.log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail("llama_cpp.server did not answer in time")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    # both come with `make install` (the `local` extra): missing, this fails, never skips
    importlib.import_module("llama_cpp.server.app")
    from agentflow_jobs.providers.local import packaged_model_path

    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_model_path()),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1", log)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.kill()
        process.wait(10)
