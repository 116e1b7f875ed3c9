"""The canary keys on the server side: `agentflow-jobs serve` at debug level (a real
subprocess, so its own logging setup is what runs) and a runner that talks to a server
with a key from ``${VAR}`` never print or store them."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from agentflow_jobs.server import create_app
from tests.fakes.handles import FakeProvider
from tests.reliability.harness import CLI, clean_env, free_port
from tests.security.conftest import SpecProject, run_cli
from tests.security.test_secrets import ITEMS, canary, leaks, scan_tree
from tests.server.live import LiveServer, provider_config


def _start_serve(tmp_path: Path, fake: FakeProvider, provider_key: str, server_key: str,
                 fmt: str) -> tuple[subprocess.Popen[bytes], str]:
    (tmp_path / "config").mkdir()
    profiles = tmp_path / "config" / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"profiles": {"local": {"provider": {
        "type": "openai", "base_url": fake.base_url, "model": "fake-model", "max_attempts": 1,
        "api_key": "${UPSTREAM_CREDENTIAL}"}}}}))
    port = free_port()
    env = clean_env(AGENTFLOW_CONFIG=str(profiles), AGENTFLOW_API_KEYS=server_key,
                    UPSTREAM_CREDENTIAL=provider_key)
    proc = subprocess.Popen(
        [*CLI, "--log-format", fmt, "--log-level", "debug", "serve", "--port", str(port),
         "--store", str(tmp_path / "store.db")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not start: {proc.communicate()[1].decode()[-2000:]}")
        time.sleep(0.05)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_serve_logs_at_debug_never_hold_either_key(
        tmp_path: Path, fake_provider: FakeProvider, fmt: str) -> None:
    provider_key, server_key = canary(), canary()
    fake_provider.script(status=401, body=f"Incorrect API key provided: {provider_key}")
    proc, url = _start_serve(tmp_path, fake_provider, provider_key, server_key, fmt)
    texts = []
    try:
        good = {"Authorization": f"Bearer {server_key}"}
        body = {"operation": "label", "categories": ["a", "b"], "items": [{"content": "great"}]}
        texts.append(httpx.post(f"{url}/v1/completions", json=body, headers=good, timeout=30).text)
        for wrong in (server_key + "0", provider_key):
            response = httpx.get(f"{url}/v1/batches", headers={"Authorization": f"Bearer {wrong}"})
            assert response.status_code == 401
            texts.append(response.text)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    logs = out.decode(errors="replace") + err.decode(errors="replace")
    assert fake_provider.count >= 1
    assert "Traceback" not in logs
    for key in (provider_key, server_key):
        assert leaks("".join(texts) + logs, key) == []
        assert scan_tree(tmp_path, key) == {}


@pytest.mark.parametrize("right_key", [True, False])
def test_a_runner_on_a_server_never_writes_the_server_key(
        project: SpecProject, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        fake_provider: FakeProvider, tmp_path: Path, right_key: bool) -> None:
    server_key = canary()
    sent_key = server_key if right_key else canary()
    app = create_app(provider_config=provider_config(fake_provider.base_url),
                     store_path=tmp_path / "server-store.db", api_keys=(server_key,))
    server = LiveServer(app)
    try:
        (project.root / "data" / "in.jsonl").write_text("\n".join(ITEMS) + "\n")
        profiles = tmp_path / "profiles.yaml"
        profiles.write_text(yaml.safe_dump({"profiles": {"remote": {
            "base_url": server.url, "api_key": "${REMOTE_CREDENTIAL}"}}}))
        monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
        monkeypatch.setenv("REMOTE_CREDENTIAL", sent_key)
        for mode in ("sync", "batch"):
            project.write_spec(profile="remote", mode=mode, name=f"hostile-{mode}",
                               output={"path": f"../out/{mode}.jsonl"})
            code, out, err = run_cli(capfd, "--log-format", "json", "--log-level", "debug",
                                     "apply", "specs")
            assert code == (0 if right_key else 4), out + err
            assert "Traceback" not in out + err
            assert leaks(out + err, sent_key) == []
    finally:
        server.stop()
    assert scan_tree(project.root, sent_key) == {}
