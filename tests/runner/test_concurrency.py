"""execution.concurrency bounds the requests the provider sees in flight, whatever
chunk_size; a provider that takes fewer at once says so."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.runner.conftest import Workspace, reviews


def _hosted_profile(ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake in a profile taking 64 at once: only the job's concurrency binds (the
    built-in profile sees a loopback server, which takes 4)."""
    profiles = ws.root / "profiles.yaml"
    profiles.write_text(
        "profiles:\n  wide:\n    engine: embedded\n"
        f"    provider: {{type: openai, base_url: '{fake_provider.base_url}', api_key: sk-test,"
        " model: fake-model, concurrency: 64}\n"
    )
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    monkeypatch.setenv("AGENTFLOW_PROFILE", "wide")


@pytest.mark.parametrize(
    ("concurrency", "chunk_size"), [(1, 64), (2, 64), (2, 5), (5, 3), (8, 20), (16, 64)]
)
def test_requests_in_flight_never_exceed_concurrency(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, concurrency: int, chunk_size: int
) -> None:
    _hosted_profile(ws, fake_provider, monkeypatch)
    total = max(24, 4 * concurrency)
    ws.write_input("reviews.jsonl", reviews(total))
    ws.write_spec(execution={"concurrency": concurrency, "chunk_size": chunk_size})
    fake_provider.script(latency_ms=30)  # slow enough that requests overlap
    assert ws.run("apply") == 0
    assert fake_provider.count == total
    assert len(ws.output()) == total
    assert fake_provider.max_in_flight <= concurrency
    # the bound is used, not undershot: the items do run side by side
    assert fake_provider.max_in_flight >= -(-concurrency * 3 // 4)


def test_a_provider_that_takes_fewer_at_once_than_the_job_asks_says_so(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    # the built-in profile's provider is the fake on loopback: self-hosted, 4 at once
    ws.write_input("reviews.jsonl", reviews(40))
    ws.write_spec(execution={"concurrency": 16})
    fake_provider.script(latency_ms=30)
    assert ws.run("apply") == 0
    [warning] = [json.loads(line) for line in capsys.readouterr().err.splitlines()
                 if "fewer requests at once" in line]
    assert (warning["provider_concurrency"], warning["concurrency"]) == (4, 16)
    assert "set `concurrency`" in warning["hint"] and "a profile named 'local'" in warning["hint"]
    assert fake_provider.max_in_flight == 4
    # the job's default (16) is not the job asking: 4 is what a local server should get
    ws.write_spec(execution=None)
    assert ws.run("apply", "--force") == 0
    assert "fewer requests at once" not in capsys.readouterr().err
