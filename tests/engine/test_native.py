"""Native batches end to end: the real CLI (a subprocess) and SDK, the fake's batch API over HTTP."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentflow_jobs.pricing import cost_usd, price_for
from agentflow_jobs.sdk import AgentFlow
from tests.fakes.handles import FakeProvider
from tests.fakes.kinds import KINDS
from tests.reliability.harness import Project, review_rows
from tests.reliability.scenarios import provider_block

FAST = {"batch": "native", "batch_poll_interval": 0.02, "batch_poll_max": 0.1}
# the tests that hold for every provider's batch API run against each fake (tests.fakes.kinds)
BOTH = pytest.mark.parametrize("provider_kind", KINDS, indirect=True)


def native_project(tmp_path: Path, fake: FakeProvider, items: int, **provider: Any) -> Project:
    project = Project(tmp_path / "ws", provider_block(fake, **{**FAST, **provider}))
    project.write_input(review_rows(items))
    project.write_spec(mode="batch", execution={"batch_size": max(items, 1)})
    return project


def expected_label(row_id: str) -> str:
    return "negative" if int(row_id[1:]) % 5 in (1, 4) else "positive"  # review_rows' words


def output(project: Project) -> list[dict[str, Any]]:
    return [json.loads(line) for line in project.output_path.read_text().splitlines()]


@BOTH
def test_a_2000_item_batch_job_sends_no_chat_request_and_a_second_apply_sends_nothing(
        tmp_path: Path, chat_fake: FakeProvider) -> None:
    project = native_project(tmp_path, chat_fake, 2000)
    first = project.run()
    assert first.code == 0, first.stderr[-2000:]
    stats = chat_fake.batch_stats()
    assert stats["chat_requests"] == 0 and stats["batches_created"] >= 1
    assert stats["lines_answered"] == 2000 and stats["files_live"] == 0  # inputs and results deleted
    rows = output(project)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(2000)]
    assert all(r["result"]["label"] == expected_label(r["id"]) for r in rows)
    again = project.run()
    assert again.code == 0, again.stderr[-2000:]
    assert chat_fake.batch_stats()["routes"] == stats["routes"] and chat_fake.count == 0


@BOTH
def test_limits_split_a_chunk_into_provider_batches_and_output_keeps_input_order(
        tmp_path: Path, chat_fake: FakeProvider) -> None:
    chat_fake.batch_script(shuffle=True)  # result lines out of order, too
    project = native_project(tmp_path, chat_fake, 2000, batch_max_requests=500)
    outcome = project.run()
    assert outcome.code == 0, outcome.stderr[-2000:]
    stats = chat_fake.batch_stats()
    assert stats["batches_created"] == 4 and stats["lines_run"] == 2000
    rows = output(project)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(2000)]
    assert all(r["result"]["label"] == expected_label(r["id"]) for r in rows)


@BOTH
def test_the_byte_limit_splits_too(tmp_path: Path, chat_fake: FakeProvider) -> None:
    project = native_project(tmp_path, chat_fake, 30, batch_max_bytes=4000)
    assert project.run().code == 0
    assert chat_fake.batch_stats()["batches_created"] > 1
    assert [r["id"] for r in output(project)] == [f"r{i}" for i in range(30)]


@BOTH
def test_an_expired_batch_keeps_its_answers_and_the_next_apply_sends_only_the_rest(
        tmp_path: Path, chat_fake: FakeProvider) -> None:
    chat_fake.batch_script(outcome="expired", answer_share=0.6)
    project = native_project(tmp_path, chat_fake, 100)
    first = project.run()
    assert first.code == 0 and "incomplete" in first.stderr, first.stderr[-2000:]  # 40 left for later
    assert len(output(project)) == 60 and chat_fake.batch_stats()["lines_answered"] == 60
    chat_fake.batch_script(replace=True)
    second = project.run()
    assert second.code == 0, second.stderr[-2000:]
    stats = chat_fake.batch_stats()
    assert stats["batches_created"] == 2 and stats["lines_run"] == 100  # 60 + only the 40 left
    assert [r["id"] for r in output(project)] == [f"r{i}" for i in range(100)]


@BOTH
def test_error_file_lines_with_error_null_and_a_failed_status_are_failures(
        tmp_path: Path, chat_fake: FakeProvider) -> None:
    # a 500 inside the error file is unpaid and transient: sent again; a 400 fails the row
    chat_fake.batch_script(error_status={"match": "review 7:", "status_code": 500})
    project = native_project(tmp_path, chat_fake, 20)
    first = project.run()
    assert first.code == 0 and "incomplete" in first.stderr
    assert "r7" not in [r["id"] for r in output(project)] and len(output(project)) == 19
    chat_fake.batch_script(replace=True, error_status={"match": "review 7:", "status_code": 400})
    second = project.run()
    [error] = project.error_rows()
    assert second.code == 0 and error["id"] == "r7" and error["code"] == "bad_request"
    assert chat_fake.batch_stats()["batches_created"] == 2


def test_a_batch_completed_with_only_an_error_file_is_harvested(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(no_output_file=True, error_status={"match": "review", "status_code": 400})
    project = native_project(tmp_path, fake_provider, 5)
    outcome = project.run()
    assert outcome.code == 1 and "Traceback" not in outcome.stderr
    assert Counter(e["code"] for e in project.error_rows()) == {"bad_request": 5}


@BOTH
@pytest.mark.parametrize("reask", ["batch", "sync"])
def test_an_invalid_answer_is_asked_again_once(tmp_path: Path, chat_fake: FakeProvider, reask: str) -> None:
    chat_fake.script(fault="wrong_label", match="review 3:", times=1)
    chat_fake.script(fault="wrong_label", match="review 4:")  # wrong every time
    project = native_project(tmp_path, chat_fake, 10, batch_reask=reask)
    outcome = project.run()
    assert outcome.code == 1, outcome.stderr[-2000:]
    rows = {r["id"]: r for r in output(project)}
    assert rows["r3"]["result"]["label"] == "positive" and "r4" not in rows
    [error] = project.error_rows()
    assert error["id"] == "r4" and error["code"] == "invalid_output" and "re-ask" in error["message"]
    stats = chat_fake.batch_stats()
    if reask == "batch":
        assert stats["batches_created"] == 2 and stats["lines_run"] == 12 and chat_fake.count == 0
    else:
        assert stats["batches_created"] == 1 and chat_fake.count == 2


def test_keep_batch_files_keeps_them(tmp_path: Path, fake_provider: FakeProvider) -> None:
    project = native_project(tmp_path, fake_provider, 10, keep_batch_files=True)
    assert project.run().code == 0
    stats = fake_provider.batch_stats()
    assert stats["files_live"] == 2 and stats["files_deleted"] == 0  # the input and the output


@BOTH
def test_control_endpoint_429s_and_5xx_are_waited_out(tmp_path: Path, chat_fake: FakeProvider) -> None:
    chat_fake.batch_script(validating_s=0.2, control=[
        {"route": "create", "status": 500, "times": 1}, {"route": "retrieve", "status": 429, "times": 8,
                                                          "retry_after": 0.01},
        {"route": "content" if chat_fake.kind == "openai" else "results", "status": 503, "times": 2}])
    project = native_project(tmp_path, chat_fake, 50)
    outcome = project.run()
    assert outcome.code == 0, outcome.stderr[-2000:]
    stats = chat_fake.batch_stats()
    # the failed create may have made the batch: it was looked for before the second create
    assert stats["batches_created"] == 1 and stats["routes"]["list"] == 1
    assert len(output(project)) == 50


def _profiles(tmp_path: Path, fake: FakeProvider, **provider: Any) -> None:
    block = provider_block(fake, **{**FAST, **provider})
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump({"profiles": {"native": {"engine": "embedded", "provider": block,
                                                            "store": str(tmp_path / "store.db")}}}))
    import os
    os.environ["AGENTFLOW_CONFIG"] = str(path)


@BOTH
def test_sdk_batches_cancel_cancels_the_provider_batch_and_keeps_its_answers(
        tmp_path: Path, chat_fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_fake.batch_script(in_progress_s=60, cancel_share=0.5)
    _profiles(tmp_path, chat_fake)
    with AgentFlow(profile="native") as client:
        batch = client.batches.submit("classify", [r["content"] for r in review_rows(40)],
                                      categories=["positive", "negative"])
        deadline = time.monotonic() + 20
        while not any(p.id for p in client.batches.retrieve(batch.id).provider_batches) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        [running] = client.batches.retrieve(batch.id).provider_batches
        assert running.id and running.status == "in_progress" and running.total == 40
        assert running.expires_at is not None and running.expires_at > time.time() + 23 * 3600
        client.batches.cancel(batch.id)
        done = client.batches.wait(batch.id, timeout=20, poll_interval=0.05)
        rows = list(client.batches.iter_output(batch.id))
    # the provider's own word for how its batch ended
    said = "cancelled" if chat_fake.kind == "openai" else "canceled"
    assert done.status == "cancelled" and done.provider_batches[0].status == said
    assert len(rows) == 20 and all(r["status"] == "completed" for r in rows)
    assert chat_fake.batch_stats()["batches_cancelled"] == 1


@BOTH
def test_native_answers_are_priced_at_the_batch_price(
        tmp_path: Path, chat_fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    model = "gpt-4o-mini" if chat_fake.kind == "openai" else "claude-haiku-4-5"
    _profiles(tmp_path, chat_fake, model=model)
    price = price_for(chat_fake.kind, model)
    assert price is not None and price.batch.input_per_mtok < price.sync.input_per_mtok
    with AgentFlow(profile="native") as client:
        batch = client.batches.submit_and_wait("classify", ["great", "awful"], categories=["positive", "negative"])
        rows = list(client.batches.iter_output(batch.id))
    for row in rows:
        usage = row["usage"]
        batch_cost = cost_usd(price, usage["prompt_tokens"], usage["completion_tokens"], batch=True)
        assert usage["cost_usd"] == pytest.approx(batch_cost)
        assert usage["cost_usd"] < cost_usd(price, usage["prompt_tokens"], usage["completion_tokens"])
    assert chat_fake.count == 0


@BOTH
@pytest.mark.parametrize(("point", "items", "extra"), [
    ("native_after_upload", 300, {}),
    ("native_after_create", 300, {}),
    ("native_after_create:3", 900, {"batch_max_requests": 300}),  # the third chunk's create
    ("native_polling", 300, {}),
    ("native_mid_harvest", 900, {}),  # after the first 200 rows were recorded
])
def test_a_kill_at_each_step_never_creates_a_second_provider_batch_for_a_chunk(
        tmp_path: Path, chat_fake: FakeProvider, point: str, items: int, extra: dict[str, Any]) -> None:
    chat_fake.batch_script(validating_s=0.2)
    project = native_project(tmp_path, chat_fake, items, **extra)
    crashed = project.run(AGENTFLOW_CRASH_AT=point)
    assert crashed.code == 137, crashed.stderr[-2000:]
    chunks = -(-items // extra.get("batch_max_requests", items))
    created = chat_fake.batch_stats()["batches_created"]
    if "after_create" in point:  # the provider made it; the process died before recording its id
        assert created == int(point.partition(":")[2] or 1)
    resumed = project.run()
    assert resumed.code == 0, resumed.stderr[-2000:]
    stats = chat_fake.batch_stats()
    assert stats["batches_created"] == chunks and stats["duplicate_chunks"] == 0, (created, stats)
    assert stats["lines_run"] == items and chat_fake.count == 0  # every line answered once
    assert [r["id"] for r in output(project)] == [f"r{i}" for i in range(items)]
    # only a kill between an upload and its record leaves that upload behind (its id was never known)
    # Anthropic's batches take their lines in the create: nothing is uploaded
    assert stats["files_live"] == (1 if point == "native_after_upload" and chat_fake.kind == "openai" else 0)


@BOTH
def test_status_shows_the_provider_batches_and_cancel_keeps_what_they_answered(
        tmp_path: Path, chat_fake: FakeProvider) -> None:
    chat_fake.batch_script(in_progress_s=120, cancel_share=0.5)
    project = native_project(tmp_path, chat_fake, 40)
    apply = project.start()
    try:
        shown: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not shown and time.monotonic() < deadline and apply.poll() is None:
            status = project.run("status", "--json")
            assert status.code == 0, status.stderr
            [job] = json.loads(status.stdout)["jobs"]
            shown = [p for b in job["batches_in_flight"] for p in b["provider_batches"]]
            time.sleep(0.1)
        assert shown, f"apply exited {apply.poll()} before status showed its provider batch"
        [provider] = shown
        assert provider["id"].startswith(("batch-fake", "msgbatch_fake")) and provider["status"] == "in_progress"
        assert (provider["total"], provider["completed"]) == (40, 0)
        assert provider["expires_at"] > time.time() + 23 * 3600
        if chat_fake.kind == "anthropic":
            assert provider["results_until"] == pytest.approx(time.time() + 29 * 86_400, abs=120)
        table = project.run("status", COLUMNS="400")
        # the cell may wrap: its lines, read without the table's borders, run on
        shown_text = " ".join(table.stderr.replace("│", " ").split())
        # Anthropic's results stay readable for 29 days: status says until when
        until = "expires" if chat_fake.kind == "openai" else "results until"
        assert provider["id"] in shown_text and f"in_progress 0/40, {until}" in shown_text
    finally:
        apply.kill()
        apply.communicate()
    cancelled = project.run("cancel", "reviews")
    assert cancelled.code == 0, cancelled.stderr[-2000:]
    stats = chat_fake.batch_stats()
    assert stats["batches_cancelled"] == 1 and stats["lines_answered"] == 20
    assert len(output(project)) == 20  # what the provider answered before it stopped is kept
    chat_fake.batch_script(replace=True)
    finished = project.run()
    assert finished.code == 0, finished.stderr[-2000:]
    stats = chat_fake.batch_stats()
    assert stats["batches_created"] == 2 and stats["lines_run"] == 40
    assert [r["id"] for r in output(project)] == [f"r{i}" for i in range(40)]


def test_plan_says_a_native_batch_job_pays_the_batch_price(tmp_path: Path, fake_provider: FakeProvider) -> None:
    project = native_project(tmp_path, fake_provider, 5, model="gpt-4o-mini")
    [job] = json.loads(project.run("plan", "--json").stdout)["jobs"]
    assert job["cost"]["paid"] == "batch" and job["cost"]["batch_usd"] < job["cost"]["sync_usd"]
    project.write_spec(mode="sync")
    [job] = json.loads(project.run("plan", "--json").stdout)["jobs"]
    assert job["cost"]["paid"] == "sync"


def test_a_batch_that_failed_validation_says_why_and_is_sent_again(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(outcome="failed")
    project = native_project(tmp_path, fake_provider, 10)
    first = project.run()
    assert first.code == 0 and "incomplete" in first.stderr and "scripted validation failure" in first.stderr
    assert not project.output_path.exists() or output(project) == []
    assert fake_provider.batch_stats()["files_live"] == 0  # the refused input file is deleted too
    fake_provider.batch_script(replace=True)
    assert project.run().code == 0 and len(output(project)) == 10


def test_a_sync_answer_and_a_native_batch_answer_are_one_ledger_entry(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    project = native_project(tmp_path, fake_provider, 10)
    project.write_spec(mode="sync")
    assert project.run().code == 0 and fake_provider.count == 10
    project.write_input(review_rows(15))
    project.write_spec(mode="batch")
    outcome = project.run()
    assert outcome.code == 0, outcome.stderr[-2000:]
    stats = fake_provider.batch_stats()
    assert stats["lines_run"] == 5 and fake_provider.count == 10  # only the 5 new items
    assert [r["id"] for r in output(project)] == [f"r{i}" for i in range(15)]


def test_every_chunk_of_a_job_is_at_the_provider_at_once(tmp_path: Path, fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(in_progress_s=2.0)
    project = native_project(tmp_path, fake_provider, 1000)
    project.write_spec(mode="batch", execution={"batch_size": 100})
    apply = project.start()
    most = 0
    while apply.poll() is None:
        batches = fake_provider.batch_stats()["batches"].values()
        most = max(most, sum(status == "in_progress" for status in batches))
        time.sleep(0.05)
    apply.communicate()
    assert apply.returncode == 0 and len(output(project)) == 1000
    assert most == 10  # not four at a time: each would wait for the others' whole window


def test_a_refused_upload_fails_only_its_chunk_and_a_refused_poll_never_drops_a_created_batch(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(control=[{"route": "upload", "status": 401, "times": 1}])
    project = native_project(tmp_path, fake_provider, 10)
    first = project.run()
    assert first.code == 0 and "incomplete" in first.stderr and "401" in first.stderr
    assert fake_provider.batch_stats()["batches_created"] == 0
    # the provider batch exists now: a 401 while polling it is waited out, not a new batch
    fake_provider.batch_script(replace=True, validating_s=0.2,
                               control=[{"route": "retrieve", "status": 401, "times": 3}])
    second = project.run()
    assert second.code == 0, second.stderr[-2000:]
    stats = fake_provider.batch_stats()
    assert stats["batches_created"] == 1 and stats["routes"]["retrieve"] >= 4
    assert len(output(project)) == 10


def test_progress_counts_what_the_provider_reports_before_the_harvest(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(in_progress_s=4)
    _profiles(tmp_path, fake_provider)
    with AgentFlow(profile="native") as client:
        batch = client.batches.submit("classify", [r["content"] for r in review_rows(40)],
                                      categories=["positive", "negative"])
        deadline = time.monotonic() + 20
        seen = client.batches.retrieve(batch.id)
        while seen.progress.completed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
            seen = client.batches.retrieve(batch.id)
        page = client.batches.output(batch.id, "json", 0, 100)
        assert seen.status == "running" and 0 < seen.progress.completed < 40
        assert page.total == 0  # reported by the provider, not yet read: no row to count twice
        done = client.batches.wait(batch.id, timeout=20, poll_interval=0.05)
    assert done.status == "completed" and done.progress.completed == 40


def test_a_refused_create_fails_its_chunk_and_deletes_its_upload(tmp_path: Path, fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(control=[{"route": "create", "status": 400, "times": 1}])
    project = native_project(tmp_path, fake_provider, 10)
    first = project.run()
    assert first.code == 0 and "incomplete" in first.stderr and "refused the batch" in first.stderr, first.stderr[-1500:]
    stats = fake_provider.batch_stats()
    assert stats["batches_created"] == 0 and stats["files_live"] == 0
    assert project.run().code == 0 and len(output(project)) == 10


def test_native_batches_run_on_a_postgresql_store_and_state(
        tmp_path: Path, fake_provider: FakeProvider, pg_url: str) -> None:
    """The chunk records live in the store: on PostgreSQL they must hold as on SQLite."""
    project = native_project(tmp_path, fake_provider, 300, batch_max_requests=100)
    profiles = yaml.safe_load(project.profiles.read_text())
    profiles["profiles"]["local"]["store"] = pg_url
    project.profiles.write_text(yaml.safe_dump(profiles))
    state = {"AGENTFLOW_STATE": pg_url, "AGENTFLOW_STATE_KEY": "native-pg"}
    first = project.run(env=state)
    assert first.code == 0, first.stderr[-2000:]
    stats = fake_provider.batch_stats()
    assert stats["chat_requests"] == 0 and stats["batches_created"] == 3
    assert stats["lines_answered"] == 300
    assert [r["id"] for r in output(project)] == [f"r{i}" for i in range(300)]
    assert not project.store.exists()  # nothing fell back to a local file
    again = project.run(env=state)
    assert again.code == 0, again.stderr[-2000:]
    assert fake_provider.batch_stats()["batches_created"] == 3 and fake_provider.count == 0


NATIVE_OPERATIONS = [
    ("classify", {"categories": ["positive", "negative"]}, "label"),
    ("extract", {"extraction_instructions": "Seats wanted.", "output_schema": {
        "type": "object", "properties": {"seats": {"type": "integer", "minimum": 1}}, "required": ["seats"]}},
     "seats"),
    ("summarize", {"summary_instructions": "One sentence."}, "summary"),
    ("enrich", {"fields": [{"name": "segment", "type": "categorical", "valid_values": ["smb", "ent"]}]}, "segment"),
    ("run", {"operation": "feedback_analysis", "user_prompt_template": "Topic of: {content}",
             "response_format": {"type": "json_object"}}, None),
]


@BOTH
@pytest.mark.parametrize(("method", "fields", "key"), NATIVE_OPERATIONS, ids=[o[0] for o in NATIVE_OPERATIONS])
def test_each_operation_runs_through_the_providers_batch_api(
        tmp_path: Path, chat_fake: FakeProvider, method: str, fields: dict[str, Any], key: str | None) -> None:
    _profiles(tmp_path, chat_fake)
    items = ["I love it, 500 seats", "Terrible support, we leave"]
    fields = dict(fields)  # the parameters are shared by both kinds' runs
    with AgentFlow(profile="native") as client:
        batch = client.batches.submit_and_wait(fields.pop("operation", method), items, timeout=30, **fields)
        rows = list(client.batches.iter_output(batch.id))
    assert batch.status == "completed" and [r["status"] for r in rows] == ["completed", "completed"]
    assert all(isinstance(r["result"], dict) and (key is None or key in r["result"]) for r in rows)
    stats = chat_fake.batch_stats()
    assert stats["batches_created"] == 1 and stats["lines_run"] == 2 and chat_fake.count == 0
