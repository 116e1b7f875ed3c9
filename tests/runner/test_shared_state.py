"""Two CI runners on one PostgreSQL state: two clones of a repository in two folders.

The clones share nothing but the database: their workspace key comes from the git
remote (written differently in each, https with a token and scp-style ssh), so the
second clone finds the first one's ledger and sends nothing; at the same time, one of
them waits or exits 5 naming the other; a ``kill -9`` holder frees the lock at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentflow_jobs.cli import main
from agentflow_jobs.runner import PgLocation, lock_holder, workspace_key
from tests.runner.conftest import Workspace, reviews
from tests.runner.test_crash import CLI, _env

REMOTES = ("https://ci-token@github.com/Acme/specs.git", "git@github.com:Acme/specs.git")


def _clone(root: Path, remote: str, count: int) -> Workspace:
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin", remote], check=True)
    ws = Workspace.__new__(Workspace)
    ws.root = root
    for name in ("specs", "data"):
        (root / name).mkdir()
    ws.state = root / ".agentflow" / "state.db"
    ws.write_input("reviews.jsonl", reviews(count))
    ws.write_spec()
    return ws


@pytest.fixture
def clones(tmp_path: Path) -> tuple[Workspace, Workspace]:
    return _clone(tmp_path / "runner-a", REMOTES[0], 40), _clone(tmp_path / "runner-b", REMOTES[1], 40)


def _run(ws: Workspace, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(ws.root)
    return main(list(args))


def test_the_workspace_key_is_the_remote_without_credentials(
    clones: tuple[Workspace, Workspace],
) -> None:
    a, b = clones
    key = workspace_key(a.root, a.root / "specs")
    assert key == workspace_key(b.root, b.root / "specs") == "github.com/Acme/specs"
    (a.root / "jobs" / "nightly").mkdir(parents=True)  # its state file: jobs/.agentflow/
    assert workspace_key(a.root, a.root / "jobs" / "nightly") == "github.com/Acme/specs:jobs"


def test_a_folder_without_a_remote_is_keyed_by_its_path(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    assert workspace_key(tmp_path, tmp_path / "specs") == str(tmp_path.resolve())


def test_the_second_runner_sends_nothing_and_writes_the_same_output(
    clones: tuple[Workspace, Workspace], pg_url: str, fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = clones
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert _run(a, monkeypatch, "apply", "--state", pg_url) == 0
    sent = fake_provider.count
    assert sent == 40
    assert not b.state.exists() and not (b.root / "out").exists()
    assert _run(b, monkeypatch, "apply", "--state", pg_url) == 0
    assert fake_provider.count == sent
    assert (b.root / "out" / "reviews.jsonl").read_bytes() == (
        a.root / "out" / "reviews.jsonl"
    ).read_bytes()
    assert not b.state.exists()  # nothing was kept on the runner itself
    capsys.readouterr()
    monkeypatch.setenv("AGENTFLOW_STATE", pg_url)  # the environment variable works as well
    assert _run(b, monkeypatch, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["jobs"][0]["completed"] == 40 and status["lock"] is None


def test_a_state_key_names_another_workspace(
    clones: tuple[Workspace, Workspace], pg_url: str, fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = clones
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert _run(a, monkeypatch, "apply", "--state", pg_url) == 0
    assert _run(b, monkeypatch, "apply", "--state", pg_url, "--state-key", "staging") == 0
    assert fake_provider.count == 80  # another workspace: its own ledger
    monkeypatch.setenv("AGENTFLOW_STATE_KEY", "staging")
    assert _run(a, monkeypatch, "apply", "--state", pg_url) == 0
    assert fake_provider.count == 80  # the environment variable names it as well


def _start(ws: Workspace, fake: Any, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "apply", *args], cwd=ws.root, env=_env(ws, fake),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_for_holder(location: PgLocation, pid: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        holder = lock_holder(location)
        if holder and holder.get("pid") == pid and holder.get("run"):
            return holder
        time.sleep(0.05)
    raise AssertionError("the first runner never held the lock")


def test_two_runners_at_once_one_is_refused_and_a_killed_holder_frees_the_lock(
    tmp_path: Path, pg_url: str, fake_provider_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    fake = fake_provider_factory(latency_ms=20)
    a, b = _clone(tmp_path / "a", REMOTES[0], 600), _clone(tmp_path / "b", REMOTES[1], 600)
    location = PgLocation(pg_url, "github.com/Acme/specs")
    first = _start(a, fake, "--state", pg_url)
    holder = _wait_for_holder(location, first.pid)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    capsys.readouterr()
    assert _run(b, monkeypatch, "apply", "--state", pg_url, "--lock-timeout", "0.2") == 5
    err = capsys.readouterr().err
    assert f"is locked by pid {first.pid} on {os.uname().nodename} (apply" in err
    assert f"run {holder['run']}" in err
    assert _run(b, monkeypatch, "status", "--state", pg_url) == 0
    assert f"locked by pid {first.pid}" in capsys.readouterr().err
    # the second runner waits; the holder dies without a word; the waiter goes on
    second = _start(b, fake, "--state", pg_url, "--lock-timeout", "120")
    while fake.count < 50:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    sent_by_first = fake.count
    _, err_b = second.communicate(timeout=120)
    assert second.returncode == 0, err_b.decode()
    assert [r["id"] for r in b.output()] == [f"r{i}" for i in range(600)]
    # what the first runner had committed was not sent again: at most its window was
    assert fake.count - sent_by_first <= 600 - 50 + 128
    assert lock_holder(location) is None


def test_state_migrate_copies_a_local_state_into_postgresql(
    ws: Workspace, pg_url: str, fake_provider: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    ws.write_input("reviews.jsonl", reviews(30))
    ws.write_spec(mode="batch")
    assert ws.run("apply") == 0
    ws.write_input("reviews.jsonl", reviews(5, start=30), append=True)
    assert ws.run("apply", "--mode", "batch", "--detach") == 0  # a batch still in flight
    capsys.readouterr()
    assert ws.run("state", "migrate", "--to", pg_url, "--json") == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows["ledger"] == 30 and rows["jobs"] == 1 and rows["batches"] >= 2
    (ws.root / "out" / "reviews.jsonl").unlink()
    assert ws.run("apply", "--state", pg_url) == 0  # collects the batch, writes from the ledger
    assert [r["id"] for r in ws.output()] == [f"r{i}" for i in range(35)]
    assert fake_provider.count == 35  # every item asked once: the copy's batch was collected
    # a copy never lands on a workspace that holds a state already
    assert ws.run("state", "migrate", "--to", pg_url) == 5
    err = capsys.readouterr().err
    assert "already holds a state" in err and "nothing was copied" in err


def test_an_unreachable_state_database_is_exit_5_without_the_password(
    ws: Workspace, fake_provider: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec()
    assert ws.run("apply", "--state", "postgresql://ci:s3cr3t@127.0.0.1:1/agentflow") == 5
    err = capsys.readouterr().err
    assert "postgresql://127.0.0.1:1/agentflow: cannot connect to the state database" in err
    assert "s3cr3t" not in err and "Traceback" not in err
    assert fake_provider.count == 0
    assert ws.run("state", "migrate", "--to", "postgresql://127.0.0.1:1/x") == 5
    assert "no state file to copy" in capsys.readouterr().err


def test_a_batch_submitted_by_one_runner_is_collected_by_the_other(
    clones: tuple[Workspace, Workspace], pg_url: str, fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = clones
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("AGENTFLOW_STORE", pg_url)  # the embedded engine's batches too
    monkeypatch.setenv("AGENTFLOW_STATE", pg_url)
    assert _run(a, monkeypatch, "apply", "--mode", "batch", "--detach") == 0
    assert _run(b, monkeypatch, "apply", "--mode", "batch") == 0
    assert [r["id"] for r in b.output()] == [f"r{i}" for i in range(40)]
    assert fake_provider.count == 40  # the batch runner A submitted, not a second one
