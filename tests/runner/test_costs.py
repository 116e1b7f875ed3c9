"""Money through the CLI: plan's estimate, budgets that stop spending, the spend recorded.

Real parts: ``main(argv)``, the embedded engine and the fake provider on loopback,
which can report known usage (``tests.fakes.metered``) so a recorded cost is checked
to the cent.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.handles import FakeProvider
from tests.fakes.kinds import provider_block
from tests.fakes.metered import fixed_usage
from tests.runner.conftest import Workspace, reviews

# gpt-4o-mini: $0.15 in, $0.60 out per million tokens (batch: half)
PROMPT, COMPLETION = 100_000, 20_000
PER_ITEM = PROMPT * 0.15 / 1e6 + COMPLETION * 0.60 / 1e6  # $0.027


def _json(capsys: pytest.CaptureFixture[str], ws: Workspace, *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = ws.run(*args, "--json")
    return code, json.loads(capsys.readouterr().out)


def test_plan_prices_a_known_model_sync_and_batch(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(50))
    ws.write_spec(model="gpt-4o-mini")
    code, plan = _json(capsys, ws, "plan", "specs")
    assert code == 0
    (job,) = plan["jobs"]
    cost = job["cost"]
    assert cost["sync_usd"] > 0 and cost["batch_usd"] > 0
    assert cost["batch_usd"] == pytest.approx(cost["sync_usd"] / 2)
    assert "genai-prices" in cost["basis"] and "openai/gpt-4o-mini" in cost["basis"]
    assert "4 UTF-8 bytes per token" in cost["basis"]
    assert job["to_send"] == 50 and job["est_input_tokens"] > 50 * 10
    assert job["est_output_tokens"] > 0
    assert plan["total_cost_usd"]["sync_usd"] == pytest.approx(cost["sync_usd"])
    assert plan["total_cost_usd"]["batch_usd"] == pytest.approx(cost["batch_usd"])


def test_plan_says_unknown_for_a_model_without_a_price(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(5))
    ws.write_spec(model="no-such-model-7b")
    _, plan = _json(capsys, ws, "plan", "specs")
    cost = plan["jobs"][0]["cost"]
    assert cost["sync_usd"] is None and cost["batch_usd"] is None
    assert cost["basis"].startswith("unknown: no price listed for model 'no-such-model-7b'")
    assert "provider.prices" in cost["basis"]
    assert plan["total_cost_usd"] == {
        "sync_usd": None, "batch_usd": None, "unknown_jobs": ["reviews"]
    }
    capsys.readouterr()
    ws.run("plan", "specs")
    assert "unknown" in capsys.readouterr().err


def test_the_estimate_grows_with_the_rendered_prompt(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(10))
    ws.write_spec(model="gpt-4o-mini")
    short = _json(capsys, ws, "plan", "specs")[1]["jobs"][0]
    ws.write_input("reviews.jsonl", reviews(10, word="great " * 400))
    long = _json(capsys, ws, "plan", "specs")[1]["jobs"][0]
    # 400 words of 6 bytes more per item: about 600 tokens more each at 4 bytes a token
    assert long["est_input_tokens"] - short["est_input_tokens"] == pytest.approx(10 * 600, rel=0.01)
    assert long["cost"]["sync_usd"] > short["cost"]["sync_usd"]


def test_a_budget_below_the_estimate_sends_nothing(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(1000))
    ws.write_spec(model="gpt-4o-mini", execution={"max_cost_usd": 0.0001})
    code, report = _json(capsys, ws, "apply", "specs")
    assert code == 1
    assert fake_provider.count == 0
    job = report["jobs"][0]
    assert job["status"] == "over_budget" and job["sent"] == 0
    assert "the estimated cost $" in job["message"]
    assert "exceeds execution.max_cost_usd $0.0001" in job["message"]
    assert "nothing was sent" in job["message"]
    assert not (ws.root / "out" / "reviews.jsonl").exists()
    # nothing was recorded either: the job is still new
    assert _json(capsys, ws, "plan", "specs")[1]["jobs"][0]["status"] == "new"


def test_the_run_budget_on_the_command_line_sends_nothing(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(1000))
    ws.write_spec(model="gpt-4o-mini")
    code, report = _json(capsys, ws, "apply", "specs", "--max-cost-usd", "0.0001")
    assert code == 1 and fake_provider.count == 0
    assert "exceeds --max-cost-usd $0.0001" in report["jobs"][0]["message"]
    assert ws.run("apply", "specs", "--max-cost-usd", "-1") == 2
    assert fake_provider.count == 0


def test_a_budget_with_an_unknown_price_refuses_until_prices_are_set(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws.write_input("reviews.jsonl", reviews(5))
    ws.write_spec(model="no-such-model-7b", execution={"max_cost_usd": 5})
    code, report = _json(capsys, ws, "apply", "specs")
    assert code == 1 and fake_provider.count == 0
    message = report["jobs"][0]["message"]
    assert "a budget is set but the price is unknown" in message and "provider.prices" in message
    profiles = ws.root / "profiles.yaml"
    profiles.write_text(json.dumps({"profiles": {"local": {"provider": {
        "type": "openai", "base_url": fake_provider.base_url, "api_key": "sk-test",
        "prices": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }}}}))
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    code, report = _json(capsys, ws, "apply", "specs")
    assert code == 0 and fake_provider.count == 5
    assert report["jobs"][0]["cost_usd"] > 0


def test_the_recorded_cost_is_right_to_the_cent(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(10))
    ws.write_spec(model="gpt-4o-mini")
    with fixed_usage(fake_provider, PROMPT, COMPLETION):
        code, report = _json(capsys, ws, "apply", "specs")
    assert code == 0 and fake_provider.count == 10
    assert report["jobs"][0]["cost_usd"] == pytest.approx(10 * PER_ITEM, abs=1e-9)
    assert round(report["cost_usd"], 2) == 0.27
    _, status = _json(capsys, ws, "status", "specs")
    assert status["jobs"][0]["cost_usd"] == pytest.approx(0.27, abs=1e-9)
    # the spend stays with the job; an apply with nothing to send spends nothing
    code, again = _json(capsys, ws, "apply", "specs")
    assert again["cost_usd"] == 0 and fake_provider.count == 10
    capsys.readouterr()
    ws.run("status", "specs")
    assert "$0.27" in capsys.readouterr().err


def test_a_budget_reached_mid_run_stops_sending_and_keeps_every_answer(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    items, budget = 200, 0.5  # the plan's estimate (short prompts) fits; the answers do not
    ws.write_input("reviews.jsonl", reviews(items))
    ws.write_spec(model="gpt-4o-mini", execution={"max_cost_usd": budget, "concurrency": 8})
    with fixed_usage(fake_provider, PROMPT, COMPLETION):
        code, report = _json(capsys, ws, "apply", "specs")
    sent = fake_provider.count
    job = report["jobs"][0]
    assert code == 1
    assert sent < items
    # every answer is in the output; no more were asked for than the requests in flight
    assert len(ws.output()) == sent == job["completed"]
    in_flight = 8  # execution.concurrency: items in flight at most
    assert budget <= job["cost_usd"] <= budget + in_flight * PER_ITEM
    assert job["cost_usd"] == pytest.approx(sent * PER_ITEM)
    assert "stopped sending: execution.max_cost_usd $0.5 reached" in job["message"]
    assert f"{items - sent} item(s) are left for a later apply" in job["message"]
    # a later apply (with room in the budget) sends only the rest
    ws.write_spec(model="gpt-4o-mini", execution={"max_cost_usd": 100})
    assert ws.run("apply", "specs") == 0
    assert fake_provider.count == items
    assert len(ws.output()) == items


def test_a_negative_budget_in_a_spec_is_a_located_spec_error(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    spec = ws.write_spec(execution={"max_cost_usd": -1})
    capsys.readouterr()
    assert ws.run("apply", "specs") == 3
    err = capsys.readouterr().err
    line = next(n for n, text in enumerate(spec.read_text().splitlines(), 1) if "max_cost_usd" in text)
    assert f"reviews.yaml:{line}:" in err and "max_cost_usd" in err
    assert "Traceback" not in err and fake_provider.count == 0


def test_a_bad_prices_key_in_the_profile_names_it(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec(model="gpt-4o-mini")
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(json.dumps({"profiles": {"local": {"provider": {
        "type": "openai", "base_url": fake_provider.base_url,
        "prices": {"input_per_mtok": 1.0, "ouput_per_mtok": 2.0},
    }}}}))
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    capsys.readouterr()
    code = ws.run("apply", "specs")
    err = capsys.readouterr().err
    assert code != 0 and fake_provider.count == 0
    assert "profiles.local.provider.prices.ouput_per_mtok" in err
    assert "did you mean `output_per_mtok`?" in err and "Traceback" not in err


def test_a_state_from_before_prices_migrates_and_says_unknown(tmp_path: Path) -> None:
    from agentflow_jobs.runner.ledger import Ledger
    from agentflow_jobs.runner.state import _V1, SCHEMA_VERSION
    from agentflow_jobs.runner.state import SqliteState as State

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(_V1)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute(
        "INSERT INTO ledger (key, job, idx, status, row, tokens, mode, created)"
        " VALUES ('k1', 'old', 0, 'completed', '{}', 120, 'sync', 0)"
    )
    db.commit()
    db.close()
    with State(path) as state:
        version = state.query("SELECT value FROM meta WHERE key='schema_version'")[0]
        assert version == (str(SCHEMA_VERSION),)
        ledger = Ledger(state)
        assert ledger.job_cost("old") is None  # answered before prices were kept: unknown
        row: Any = {"status": "completed", "result": {}, "error": None,
                    "usage": {"total_tokens": 10, "requests": 1, "cost_usd": 0.25}}
        ledger.commit("new", "sync", [("k2", 0, row)])
        assert ledger.job_cost("new") == 0.25


def test_answers_of_the_engines_batches_are_recorded_at_the_price_paid(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    # the engine's batch workers ask the chat endpoint: the provider bills the sync price
    ws.write_input("reviews.jsonl", reviews(10))
    ws.write_spec(model="gpt-4o-mini", mode="batch", execution={"batch_size": 4})
    with fixed_usage(fake_provider, PROMPT, COMPLETION):
        code, report = _json(capsys, ws, "apply", "specs")
    assert code == 0 and report["jobs"][0]["batches"] == 3
    assert report["jobs"][0]["cost_usd"] == pytest.approx(10 * PER_ITEM, abs=1e-9)
    _, status = _json(capsys, ws, "status", "specs")
    assert status["jobs"][0]["cost_usd"] == pytest.approx(10 * PER_ITEM, abs=1e-9)


def test_a_budget_in_batch_mode_stops_submitting_chunks(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    items, budget = 40, 0.2  # chunks of 4 items at $0.027 each: the second reaches it
    ws.write_input("reviews.jsonl", reviews(items))
    ws.write_spec(
        model="gpt-4o-mini", mode="batch", execution={"batch_size": 4, "max_cost_usd": budget}
    )
    with fixed_usage(fake_provider, PROMPT, COMPLETION):
        code, report = _json(capsys, ws, "apply", "specs")
    job = report["jobs"][0]
    assert code == 1 and job["batches"] == 2
    assert fake_provider.count == 8 == len(ws.output()) == job["completed"]
    assert job["cost_usd"] == pytest.approx(8 * PER_ITEM)
    assert "32 item(s) are left for a later apply" in job["message"]


def test_a_remote_service_prices_the_answers_the_runner_records(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.server.live import http_profile, live_server, write_profiles

    ws.write_input("reviews.jsonl", reviews(10))
    ws.write_spec(model="gpt-4o-mini", profile="remote")
    with live_server(fake_provider.base_url, ws.root / "server.db") as server:
        config = write_profiles(ws.root / "profiles.yaml", {"remote": http_profile(server)})
        monkeypatch.setenv("AGENTFLOW_CONFIG", str(config))
        plan = _json(capsys, ws, "plan", "specs")[1]["jobs"][0]
        assert plan["cost"]["sync_usd"] > 0  # a remote service's model is priced by name
        with fixed_usage(fake_provider, PROMPT, COMPLETION):
            code, report = _json(capsys, ws, "apply", "specs")
        assert code == 0 and fake_provider.count == 10
        assert report["jobs"][0]["cost_usd"] == pytest.approx(10 * PER_ITEM, abs=1e-9)


def test_retry_keeps_a_run_budget_too(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(20, word="awful"))
    ws.write_spec(model="gpt-4o-mini")
    fake_provider.script(status=400, match="awful")
    assert ws.run("apply", "specs") == 1
    sent = fake_provider.count
    fake_provider.reset()
    code, report = _json(capsys, ws, "retry", "reviews", "specs", "--max-cost-usd", "0.000001")
    assert code == 1 and fake_provider.count == 0 and sent == 20
    assert "exceeds --max-cost-usd $0.000001" in report["jobs"][0]["message"]
    assert ws.run("retry", "reviews", "specs", "--max-cost-usd", "1") == 0
    assert fake_provider.count == 20


def test_an_anthropic_profile_is_priced_by_its_claude_model_in_plan_and_apply(
    ws: Workspace, fake_anthropic: FakeAnthropic, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profiles = ws.root / "profiles.yaml"
    provider = provider_block(fake_anthropic, model="claude-haiku-4-5")
    profiles.write_text(yaml.safe_dump({"profiles": {"claude": {
        "engine": "embedded", "store": str(ws.root / "claude.db"), "provider": provider}}}))
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    ws.write_input("reviews.jsonl", reviews(10))
    ws.write_spec(profile="claude")
    _, plan = _json(capsys, ws, "plan", "specs")
    cost = plan["jobs"][0]["cost"]
    assert "anthropic/claude-haiku-4-5" in cost["basis"] and "listed batch price" in cost["basis"]
    # each request carries Anthropic's tool-use system prompt on top of the prompt plan rendered
    tool_mode = plan["jobs"][0]["est_input_tokens"]
    provider["structured_output"] = "native"
    profiles.write_text(yaml.safe_dump({"profiles": {"claude": {
        "engine": "embedded", "store": str(ws.root / "claude.db"), "provider": provider}}}))
    _, native = _json(capsys, ws, "plan", "specs")
    assert tool_mode - native["jobs"][0]["est_input_tokens"] == 10 * 340
    provider.pop("structured_output")
    profiles.write_text(yaml.safe_dump({"profiles": {"claude": {
        "engine": "embedded", "store": str(ws.root / "claude.db"), "provider": provider}}}))
    assert cost["sync_usd"] > 0 and cost["batch_usd"] == pytest.approx(cost["sync_usd"] / 2)
    # claude-haiku-4-5: $1 in, $5 out per million tokens
    with fixed_usage(fake_anthropic, PROMPT, COMPLETION):
        code, report = _json(capsys, ws, "apply", "specs")
    assert code == 0 and fake_anthropic.count == 10
    assert report["jobs"][0]["cost_usd"] == pytest.approx(10 * (PROMPT * 1.0 + COMPLETION * 5.0) / 1e6)


def test_a_zero_budget_lets_a_free_model_run_and_stops_a_paid_one(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    ws.write_input("reviews.jsonl", reviews(5))
    ws.write_spec(model="gpt-4o-mini", execution={"max_cost_usd": 0})
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(json.dumps({"profiles": {"local": {"provider": {
        "type": "openai", "base_url": fake_provider.base_url,
        "prices": {"input_per_mtok": 0, "output_per_mtok": 0},
    }}}}))
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    code, report = _json(capsys, ws, "apply", "specs")
    assert code == 0 and fake_provider.count == 5 and len(ws.output()) == 5
    assert report["jobs"][0]["cost_usd"] == 0
    # the same $0 budget against a price: refused before anything is sent, said as written
    monkeypatch.delenv("AGENTFLOW_CONFIG")
    ws.write_spec(model="gpt-4o-mini", execution={"max_cost_usd": 0.00005})
    code, report = _json(capsys, ws, "apply", "specs", "--force")
    assert code == 1 and fake_provider.count == 5
    assert "exceeds execution.max_cost_usd $0.00005;" in report["jobs"][0]["message"]


def test_a_job_whose_output_fails_still_reports_what_it_spent(
    ws: Workspace, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(10))
    ws.write_spec(model="gpt-4o-mini")
    (ws.root / "out" / "reviews.jsonl").mkdir(parents=True)  # a folder where the file goes
    with fixed_usage(fake_provider, PROMPT, COMPLETION):
        code, report = _json(capsys, ws, "apply", "specs")
    job = report["jobs"][0]
    assert code != 0 and job["status"] == "error" and "cannot write the output" in job["message"]
    # paid for: the run's spend, its budget and its record count it
    assert job["cost_usd"] == pytest.approx(10 * PER_ITEM) and report["cost_usd"] == pytest.approx(10 * PER_ITEM)
    assert job["sent"] == 10
