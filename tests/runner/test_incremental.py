"""Incremental applies: only new or changed items are sent, counted at the provider."""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from typing import Any

import pytest

from tests.fakes.handles import FakeProvider
from tests.runner.conftest import Workspace, reviews


def test_first_apply_writes_every_row_in_input_order(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(20))
    ws.write_spec()
    assert ws.run("apply") == 0
    rows = ws.output()
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(20)]
    assert all(r["result"]["label"] == "positive" for r in rows)
    assert fake_provider.count == 20


def test_appending_rows_sends_exactly_the_new_ones(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(20))
    ws.write_spec()
    assert ws.run("apply") == 0
    ws.write_input("reviews.jsonl", reviews(10, start=20), append=True)
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 10
    assert len(ws.output()) == 30


def test_unchanged_reapply_sends_nothing(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(15))
    ws.write_spec()
    assert ws.run("apply") == 0
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 0


def test_changing_the_prompt_reruns_every_item(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(12))
    ws.write_spec()
    assert ws.run("apply") == 0
    ws.write_spec(categories=["positive", "negative", "mixed"])
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 12


def test_changing_only_the_output_format_sends_nothing(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(8))
    ws.write_spec()
    assert ws.run("apply") == 0
    fake_provider.reset()
    ws.write_spec(output={"path": "../out/reviews.csv", "format": "csv", "include_input": True})
    assert ws.run("apply") == 0
    assert fake_provider.count == 0
    with open(ws.root / "out" / "reviews.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(8)]
    assert set(rows[0]) >= {"id", "content", "label", "confidence"}


def test_duplicate_items_are_sent_once(ws: Workspace, fake_provider: Any) -> None:
    rows = [{"rid": f"d{i}", "content": "same text, great"} for i in range(5)]
    ws.write_input("reviews.jsonl", rows)
    ws.write_spec()
    assert ws.run("apply") == 0
    assert fake_provider.count == 1
    assert [r["id"] for r in ws.output()] == [f"d{i}" for i in range(5)]


def test_deleted_output_is_rewritten_without_requests(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(5))
    ws.write_spec()
    assert ws.run("apply") == 0
    (ws.root / "out" / "reviews.jsonl").unlink()
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 0
    assert len(ws.output()) == 5


def test_force_resends_everything(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(6))
    ws.write_spec()
    assert ws.run("apply") == 0
    fake_provider.reset()
    assert ws.run("apply", "--force") == 0
    assert fake_provider.count == 6


def test_provenance_and_index_ids(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", [{"content": "great"}, {"content": "awful"}])
    ws.write_spec(
        input={"path": "../data/reviews.jsonl", "id_field": None},
        output={"path": "../out/reviews.jsonl", "include_provenance": True},
    )
    assert ws.run("apply") == 0
    rows = ws.output()
    assert [r["id"] for r in rows] == [0, 1]
    assert rows[0]["provenance"]["job"] == "reviews"
    assert rows[0]["provenance"]["mode"] == "sync"
    assert rows[0]["provenance"]["attempts"] == 1
    model = f"openai:default@{fake_provider.base_url.rstrip('/')}"
    usages = [r["provenance"]["usage"] for r in rows]
    assert [r["provenance"]["model"] for r in rows] == [model, model]
    assert all(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0 for u in usages)
    fake_provider.reset()
    ws.write_spec(
        input={"path": "../data/reviews.jsonl", "id_field": None},
        output={"path": "../out/reviews.csv", "format": "csv", "include_provenance": True},
    )
    assert ws.run("apply") == 0
    assert fake_provider.count == 0
    with open(ws.root / "out" / "reviews.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        table = list(reader)
    assert reader.fieldnames is not None
    assert reader.fieldnames[-7:] == [
        "_job",
        "_model",
        "_mode",
        "_attempts",
        "_total_tokens",
        "_spec_hash",
        "_run_id",
    ]
    assert [r["id"] for r in table] == ["0", "1"]
    assert [(r["_job"], r["_model"], r["_mode"], r["_attempts"]) for r in table] == [
        ("reviews", model, "sync", "1")
    ] * 2
    assert [int(r["_total_tokens"]) for r in table] == [u["total_tokens"] for u in usages]


def test_plan_exit_code_and_json(ws: Workspace, fake_provider: Any, capsys: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(7))
    ws.write_spec()
    assert ws.run("plan", "--exit-code", "--json") == 10
    plan = json.loads(capsys.readouterr().out)
    assert plan["jobs"][0]["to_send"] == 7 and plan["jobs"][0]["status"] == "new"
    # a new job has no earlier answers: the estimate comes from the prompts themselves
    assert plan["jobs"][0]["est_requests"] == 7
    assert 7 * 10 < plan["jobs"][0]["est_tokens"] < 7 * 200
    assert ws.run("plan") == 0
    table = capsys.readouterr().err
    assert "est. requests" in table and "est. tokens" in table
    assert " ? " not in table
    assert ws.run("apply") == 0
    capsys.readouterr()
    assert ws.run("plan", "--exit-code", "--json") == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["status"] == "up_to_date"
    assert fake_provider.count == 7


def test_force_sends_each_distinct_item_once(ws: Workspace, fake_provider: Any) -> None:
    rows = reviews(3) + reviews(3)  # every item twice
    ws.write_input("reviews.jsonl", rows)
    ws.write_spec()
    assert ws.run("apply") == 0
    assert fake_provider.count == 3
    fake_provider.reset()
    assert ws.run("apply", "--force") == 0
    assert fake_provider.count == 3
    assert len(ws.output()) == 6


def test_a_touched_but_identical_input_is_up_to_date(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    path = ws.write_input("reviews.jsonl", reviews(4))
    ws.write_spec()
    assert ws.run("apply") == 0
    os.utime(path, ns=(1, 1))
    capsys.readouterr()
    assert ws.run("plan", "--json", "--exit-code") == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["status"] == "up_to_date"


def test_pointing_the_profile_at_another_endpoint_reruns_every_item(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(5))
    ws.write_spec(output={"path": "../out/reviews.jsonl", "include_provenance": True})
    assert ws.run("apply") == 0
    assert fake_provider.count == 5
    first_model = ws.output()[0]["provenance"]["model"]
    assert fake_provider.base_url.rstrip("/") in first_model
    second = FakeProvider()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", second.base_url)
        capsys.readouterr()
        assert ws.run("plan", "--json", "--exit-code") == 10
        plan = json.loads(capsys.readouterr().out)["jobs"][0]
        assert plan["status"] == "changed" and "model" in plan["reasons"]
        assert plan["to_send"] == 5 and plan["cached"] == 0
        assert ws.run("apply") == 0
        assert second.count == 5 and fake_provider.count == 5
        assert second.base_url.rstrip("/") in ws.output()[0]["provenance"]["model"]
    finally:
        second.close()


def test_changing_the_default_model_reruns_every_item(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(4))
    ws.write_spec()
    assert ws.run("apply") == 0
    monkeypatch.setenv("AGENTFLOW_MODEL", "other-model")
    fake_provider.reset()
    capsys.readouterr()
    assert ws.run("plan", "--json") == 0
    plan = json.loads(capsys.readouterr().out)["jobs"][0]
    assert plan["reasons"] == ["model"] and plan["to_send"] == 4
    assert ws.run("apply") == 0
    assert fake_provider.count == 4
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 0


def test_the_model_identity_holds_no_secret(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = fake_provider.base_url.split("://", 1)[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:s3cret@{host}")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-k3y")
    ws.write_input("reviews.jsonl", reviews(1))
    ws.write_spec(output={"path": "../out/reviews.jsonl", "include_provenance": True})
    ws.run("apply")  # the endpoint may refuse URL credentials; the state is written anyway
    stored = b"".join(p.read_bytes() for p in ws.state.parent.glob("state.db*"))
    assert host.encode() in stored
    assert b"s3cret" not in stored and b"sk-k3y" not in stored


def test_apply_leaves_the_garbage_collector_as_it_found_it(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # apply collects rarely while it sends (bench e2e); watch and SDK callers run many
    import gc

    import agentflow_jobs.runner.apply as apply_module

    seen: list[tuple[tuple[int, int, int], int]] = []
    apply_all = apply_module._apply_all

    def watched(*args: Any) -> None:  # records what the jobs ran under, then runs them
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        apply_all(*args)

    monkeypatch.setattr(apply_module, "_apply_all", watched)
    before = gc.get_threshold()
    ws.write_input("reviews.jsonl", reviews(5))
    ws.write_spec()
    assert ws.run("apply") == 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert fake_provider.count == 5
    [(during, frozen)] = seen
    assert during[0] > before[0] and frozen > 0


def test_a_sync_apply_sends_without_pausing_for_the_collector(
    ws: Workspace, fake_provider_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each collection stops the event loop with every request in flight waiting behind
    # it (bench e2e); the fake runs in its own process so only apply's objects count
    import gc

    import agentflow_jobs.runner.apply as apply_module

    pauses: list[int] = []
    apply_all = apply_module._apply_all

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            pauses.append(info["generation"])

    def watched(*args: Any) -> None:  # the jobs themselves: planned, sent, written
        gc.callbacks.append(on_collection)
        try:
            apply_all(*args)
        finally:
            gc.callbacks.remove(on_collection)

    monkeypatch.setattr(apply_module, "_apply_all", watched)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider_process.base_url)
    ws.write_input("reviews.jsonl", reviews(3000))
    ws.write_spec()
    assert ws.run("apply") == 0
    assert fake_provider_process.count == 3000
    assert len(ws.output()) == 3000
    assert pauses == []


@pytest.mark.parametrize(("count", "edit", "latency_ms"), [(20, 3, 150), (2_000, 1_500, 5)])
def test_an_input_edited_while_apply_sends_is_applied_by_the_next_apply(
        ws: Workspace, fake_provider: Any, count: int, edit: int, latency_ms: int) -> None:
    """The output of an apply is of the input it planned and fingerprinted, whole; rows
    changed or added meanwhile (the file rewritten in place: the same inode, truncated)
    wait for the next apply, which sends only them. With 2,000 rows the sync job is still
    counting its input while it sends: the input was read whole when the count began, so
    the rewrite never tears a line of it."""
    ws.write_input("reviews.jsonl", reviews(count))
    ws.write_spec(execution={"concurrency": 4}, output={"include_input": True})
    fake_provider.script(latency_ms=latency_ms)
    codes: list[int] = []
    applying = threading.Thread(target=lambda: codes.append(ws.run("apply")))
    applying.start()
    deadline = time.monotonic() + 30
    while fake_provider.count == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    edited = reviews(count + 5)
    edited[edit]["content"] = f"review {edit}: the product is awful"
    ws.write_input("reviews.jsonl", edited)
    applying.join(timeout=60)
    assert codes == [0]
    rows = ws.output()
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(count)] and not ws.errors()
    assert rows[edit]["input"]["content"] == f"review {edit}: the product is great"  # as sent
    assert fake_provider.count == count
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 6  # the edited row as edited, and the 5 added
    rows = ws.output()
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(count + 5)]
    assert rows[edit]["input"]["content"] == f"review {edit}: the product is awful"
