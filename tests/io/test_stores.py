"""Input and output URLs through fsspec: memory:// in process, s3:// against moto's server.

The S3 server is moto in server mode, a real HTTP server on a free loopback port; the
credentials are fake and come from the environment, as they would for a real bucket.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import httpx
import pyarrow.parquet as pq
import pytest

from agentflow_jobs.errors import InputError
from agentflow_jobs.io import AtomicObject, open_atomic, read_items
from tests.runner.conftest import Workspace, reviews


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture
def bucket() -> Iterator[str]:
    """A fresh memory:// folder, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"memory://t{uuid.uuid4().hex[:8]}"
    fs.mkdir(root)
    yield root
    fs.rm(root, recursive=True)


def test_an_object_is_replaced_only_on_commit(bucket: str) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{bucket}/out.jsonl", b"old\n")
    out = open_atomic(f"{bucket}/out.jsonl")
    assert isinstance(out, AtomicObject)
    out.handle.write("new\n")
    out.abort()
    assert fs.cat(f"{bucket}/out.jsonl") == b"old\n"
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(bucket, detail=False)] == ["out.jsonl"]
    out = open_atomic(f"{bucket}/out.jsonl")
    out.handle.write("new\n")
    out.commit()
    assert fs.cat(f"{bucket}/out.jsonl") == b"new\n"
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(bucket, detail=False)] == ["out.jsonl"]


def test_a_missing_object_is_an_input_error_naming_the_url(bucket: str) -> None:
    with pytest.raises(InputError) as info:
        list(read_items(f"{bucket}/nothing.jsonl"))
    assert str(info.value) == f"{bucket}/nothing.jsonl: cannot read input: no such object"


def test_a_job_reads_and_writes_memory_urls_and_replans_unchanged_without_reading(
    ws: Workspace, bucket: str, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{bucket}/in.jsonl", _jsonl(reviews(3)))
    ws.write_spec(input={"path": f"{bucket}/in.jsonl"}, output={"path": f"{bucket}/out.jsonl"})
    assert ws.run("apply") == 0
    rows = [json.loads(line) for line in fs.cat(f"{bucket}/out.jsonl").decode().splitlines()]
    assert [r["id"] for r in rows] == ["r0", "r1", "r2"]
    opened: list[str] = []
    real_open = type(fs)._open
    monkeypatch.setattr(type(fs), "_open", lambda self, path, *a, **k: opened.append(path) or real_open(self, path, *a, **k))
    capsys.readouterr()
    assert ws.run("plan", "--json", "--exit-code") == 0
    assert opened == []  # the input's metadata said "unchanged": nothing was downloaded
    fs.pipe(f"{bucket}/in.jsonl", _jsonl(reviews(4)))
    assert ws.run("plan", "--exit-code") == 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the loopback S3 server; credentials from the environment."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fsspec.filesystem("s3").clear_instance_cache()
    name = f"b{uuid.uuid4().hex[:10]}"
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir(name)
    yield f"s3://{name}"
    fsspec.filesystem("s3").clear_instance_cache()


def test_a_job_reads_and_writes_s3(ws: Workspace, s3: str, fake_provider: Any, capsys: Any) -> None:
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.pipe(f"{s3}/data/in.jsonl", _jsonl(reviews(3)))
    ws.write_spec(
        input={"path": f"{s3}/data/in.jsonl"}, output={"path": f"{s3}/out/results.parquet"}
    )
    assert ws.run("apply") == 0
    fs.invalidate_cache()
    with fs.open(f"{s3}/out/results.parquet", "rb") as handle:
        table = pq.read_table(handle)
    assert table.column("id").to_pylist() == ["r0", "r1", "r2"]
    # only the result object is left: the temporary object was copied over it and deleted
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(f"{s3}/out", detail=False)] == ["results.parquet"]
    assert "testing-secret" not in capsys.readouterr().err
    fake_provider.reset()
    assert ws.run("plan", "--exit-code") == 0
    assert ws.run("apply") == 0
    assert fake_provider.count == 0
    fs.pipe(f"{s3}/data/in.jsonl", _jsonl(reviews(4)))
    assert ws.run("plan", "--exit-code") == 10
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
