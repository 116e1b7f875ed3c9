"""execution.concurrency bounds the requests the provider sees in flight, whatever
chunk_size; a provider that takes fewer at once says so."""

from __future__ import annotations

from typing import Any

import pytest

from tests.runner.conftest import Workspace, reviews


def _hosted_profile(ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake as a hosted API taking 64 at once: only the job's concurrency binds (the
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
    err = capsys.readouterr().err
    assert "at most 4 requests at once go to this provider, not the job's 16" in err
    assert "set `concurrency`" in err and "a profile named 'local'" in err
    assert fake_provider.max_in_flight == 4
    ws.write_spec(execution={"concurrency": 4})
    assert ws.run("apply", "--force") == 0
    assert "requests at once go to this provider" not in capsys.readouterr().err
