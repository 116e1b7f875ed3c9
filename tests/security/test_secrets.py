"""A canary API key never shows up where a user or an attacker could read it: logs (JSON
and console, debug level), the state file, the batch store, outputs, errors files,
exception messages and HTTP error bodies (DESIGN.md §5, invariant 6). The fake provider
is made to echo the key back in its error bodies, as some real endpoints do."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agentflow import AgentFlow
from agentflow_jobs.errors import AgentFlowError
from agentflow_jobs.providers.failures import MESSAGE_CHARS
from agentflow_jobs.server import create_app
from tests.fakes.handles import FakeProvider
from tests.security.conftest import SpecProject, run_cli
from tests.server.live import LiveServer, provider_config

ITEMS = ['{"content": "a great product"}', '{"content": "an awful product"}',
         '{"content": "fine"}']


def canary() -> str:
    # unique per test: redaction is process-global, an earlier test must not mask a miss
    return f"sk-canary-{uuid.uuid4().hex}"


def leaks(blob: str | bytes, secret: str) -> list[str]:
    """The pieces of ``secret`` (whole, or any 12-char window of it) found in ``blob``."""
    data = blob.encode("utf-8", "replace") if isinstance(blob, str) else blob
    windows = {secret[i:i + 12] for i in range(len("sk-canary-"), len(secret) - 11)}
    return sorted(w for w in {secret, *windows} if w.encode() in data)


def scan_tree(root: Path, secret: str) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and (hits := leaks(path.read_bytes(), secret)):
            found[str(path.relative_to(root))] = hits
    return found


def _workspace(project: SpecProject, monkeypatch: pytest.MonkeyPatch, fake: FakeProvider,
               key: str, source: str) -> None:
    (project.root / "data" / "in.jsonl").write_text("\n".join(ITEMS) + "\n")
    provider = {"type": "openai", "base_url": fake.base_url, "model": "fake-model",
                "max_attempts": 2, "api_key": "${LLM_CREDENTIAL_FOR_TEST}"}
    if source == "openai_env":
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", key)
    else:
        monkeypatch.setenv("LLM_CREDENTIAL_FOR_TEST", key)
        profiles = project.root / "profiles.yaml"
        profiles.write_text(yaml.safe_dump({"profiles": {"local": {
            "engine": "embedded", "store": str(project.root / "store.db"), "provider": provider}}}))
        monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    monkeypatch.setenv("AGENTFLOW_STORE", str(project.root / "store.db"))
    project.write_spec(execution={"max_failure_rate": 1.0})


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("source", ["profile_var", "openai_env"])
def test_a_successful_apply_never_writes_the_provider_key(
        project: SpecProject, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        fake_provider: FakeProvider, fmt: str, source: str) -> None:
    key = canary()
    fake_provider.script(require_api_key=key)
    _workspace(project, monkeypatch, fake_provider, key, source)
    code, out, err = run_cli(capfd, "--log-format", fmt, "--log-level", "debug", "apply", "specs")
    assert code == 0, err
    assert fake_provider.stats()["by_status"] == {"200": 3}  # the key did reach the provider
    for argv in (["status", "--json"], ["plan", "--json"], ["status"]):
        more = run_cli(capfd, "--log-format", fmt, "--log-level", "debug", *argv)
        out, err = out + more[1], err + more[2]
    assert leaks(out + err, key) == []
    assert scan_tree(project.root, key) == {}


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize(("status", "where"), [(401, "start"), (400, "start"), (500, "start"),
                                               (503, "end")])
def test_a_provider_echoing_the_key_in_its_errors_never_leaks_it(
        project: SpecProject, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        fake_provider: FakeProvider, fmt: str, status: int, where: str) -> None:
    key = canary()
    # "end": the key lies wholly past the excerpt limit of the error message
    echo = f"Incorrect API key provided: {key}." if where == "start" else "x" * 400 + key
    fake_provider.script(status=status, body=echo)
    _workspace(project, monkeypatch, fake_provider, key, "profile_var")
    code, out, err = run_cli(capfd, "--log-format", fmt, "--log-level", "debug", "apply", "specs")
    assert code in (0, 1, 4), err  # max_failure_rate 1.0: failed items alone do not fail the job
    assert fake_provider.count >= 3
    assert leaks(out + err, key) == []
    assert scan_tree(project.root, key) == {}
    errors = (project.root / "out" / "out.errors.jsonl")
    if errors.exists():
        assert "***" in errors.read_text() or str(status) in errors.read_text()


@pytest.mark.parametrize("status", [401, 500])
def test_a_key_cut_by_the_excerpt_limit_leaves_no_prefix(
        project: SpecProject, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        fake_provider: FakeProvider, status: int) -> None:
    key = canary()
    # the provider's message is kept up to MESSAGE_CHARS: without redaction first, the cut
    # would fall inside the key
    fake_provider.script(status=status, body="x" * (MESSAGE_CHARS - 10) + key)
    _workspace(project, monkeypatch, fake_provider, key, "profile_var")
    code, out, err = run_cli(capfd, "--log-format", "json", "--log-level", "debug", "apply", "specs")
    assert code in (0, 1, 4), err
    assert leaks(out + err, key) == []
    assert scan_tree(project.root, key) == {}


def _text_of(value: Any) -> str:
    return repr(value) + str(value)


def test_sdk_results_and_exceptions_never_hold_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_provider: FakeProvider) -> None:
    key = canary()
    fake_provider.script(status=401, body=f"Incorrect API key provided: {key}")
    (tmp_path / "config").mkdir()
    (tmp_path / "data").mkdir()
    profiles = tmp_path / "config" / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"profiles": {"local": {
        "engine": "embedded", "store": str(tmp_path / "data" / "store.db"),
        "provider": {"type": "openai", "base_url": fake_provider.base_url, "api_key": key,
                     "model": "fake-model", "max_attempts": 1}}}}))
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    seen: list[str] = []
    with AgentFlow.from_profile("local") as client:
        seen.append(_text_of(client.profile))
        try:
            result = client.completions.classify(items=["great"], categories=["a", "b"])
            seen.append(_text_of(result.results))
        except AgentFlowError as exc:
            seen.append(_text_of(exc) + _text_of(exc.to_dict()))
        batch = client.batches.submit_and_wait(operation="classify", items=["great", "bad"],
                                               categories=["a", "b"], timeout=30)
        seen.append(_text_of(batch) + _text_of(list(client.batches.iter_output(batch.id))))
    assert fake_provider.count >= 2
    assert leaks("".join(seen), key) == []
    assert scan_tree(tmp_path / "data", key) == {}


@pytest.fixture
def keyed_server(fake_provider: FakeProvider, tmp_path: Path) -> Iterator[tuple[LiveServer, str, str]]:
    provider_key, server_key = canary(), canary()
    fake_provider.script(status=401, body=f"Incorrect API key provided: {provider_key}")
    app = create_app(provider_config=provider_config(fake_provider.base_url, api_key=provider_key,
                                                     max_attempts=1),
                     store_path=tmp_path / "store.db", api_keys=(server_key,))
    server = LiveServer(app)
    try:
        yield server, provider_key, server_key
    finally:
        server.stop()


def test_http_bodies_and_server_logs_never_hold_either_key(
        keyed_server: tuple[LiveServer, str, str], capfd: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    server, provider_key, server_key = keyed_server
    good = {"Authorization": f"Bearer {server_key}"}
    texts: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        body = {"operation": "label", "categories": ["a", "b"], "items": [{"content": "great"}]}
        texts.append(http.post("/v1/completions", json=body, headers=good).text)
        batch = http.post("/v1/batches", json=body, headers=good).json()
        for _ in range(200):
            state = http.get(f"/v1/batches/{batch['id']}", headers=good).json()
            if state["status"] in ("completed", "failed"):
                break
            time.sleep(0.05)
        for fmt in ("json", "jsonl", "csv"):
            texts.append(http.get(f"/v1/batches/{batch['id']}/output", params={"format": fmt},
                                  headers=good).text)
        texts.append(http.get("/metrics", headers=good).text)
        for wrong in (server_key + "x", server_key[:-1], provider_key):
            response = http.get("/v1/batches", headers={"Authorization": f"Bearer {wrong}"})
            assert response.status_code == 401
            texts.append(response.text + str(response.headers))
            assert leaks(response.text, wrong) == []
    captured = capfd.readouterr()
    everything = "".join(texts) + captured.out + captured.err
    assert leaks(everything, provider_key) == []
    assert leaks(everything, server_key) == []
    assert scan_tree(tmp_path, provider_key) == {}
    assert scan_tree(tmp_path, server_key) == {}


def test_sdk_auth_error_never_echoes_the_key_it_sent(keyed_server: tuple[LiveServer, str, str]) -> None:
    server = keyed_server[0]
    wrong = canary()
    with AgentFlow(base_url=server.url, api_key=wrong) as client, \
            pytest.raises(AgentFlowError) as caught:
        client.batches.list()
    assert leaks(_text_of(caught.value) + _text_of(caught.value.to_dict()), wrong) == []
