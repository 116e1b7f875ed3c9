"""Per-item failures, retry, malformed inputs: one bad item never fails the job alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentflow_jobs.runner.counts import is_retryable
from tests.runner.conftest import Workspace, reviews


def _poisoned(count: int, bad: set[int]) -> list[dict[str, Any]]:
    rows = reviews(count)
    for i in bad:
        rows[i]["content"] = f"poison {i}"
    return rows


def test_failed_items_go_to_the_errors_file_and_good_rows_are_kept(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", _poisoned(20, {3, 7}))
    ws.write_spec(execution={"max_failure_rate": 0.05})
    fake_provider.script(match="poison", status=400)
    assert ws.run("apply") == 1
    err = capsys.readouterr().err
    assert "failure rate 10.0% is above max_failure_rate 5.0%" in err
    assert "`agentflow-jobs retry reviews` re-sends the 2 failed item(s)" in err and "could not be sent" not in err
    assert len(ws.output()) == 18
    errors = ws.errors()
    assert [(e["id"], e["line"]) for e in errors] == [("r3", 4), ("r7", 8)]
    assert all(e["code"] and e["message"] for e in errors)
    assert [e["input"] for e in errors] == [
        {"rid": "r3", "content": "poison 3"},
        {"rid": "r7", "content": "poison 7"},
    ]


def test_failures_within_the_allowed_rate_succeed(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", _poisoned(20, {3}))
    ws.write_spec(execution={"max_failure_rate": 0.10})
    fake_provider.script(match="poison", status=400)
    assert ws.run("apply") == 0
    assert len(ws.errors()) == 1


def test_apply_does_not_resend_failed_items_but_retry_does(
    ws: Workspace, fake_provider: Any
) -> None:
    ws.write_input("reviews.jsonl", _poisoned(20, {3, 7}))
    ws.write_spec(execution={"max_failure_rate": 0.5})
    fake_provider.script(match="poison", status=400)
    assert ws.run("apply") == 0
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 0
    assert ws.run("retry", "reviews") == 0
    assert fake_provider.count == 2
    assert len(ws.output()) == 20
    assert ws.errors() == []
    retried = {r["id"]: r for r in ws.output()}
    assert retried["r3"]["result"]["label"]


def test_malformed_lines_are_item_errors_with_line_numbers(
    ws: Workspace, fake_provider: Any
) -> None:
    path = ws.root / "data" / "reviews.jsonl"
    path.write_bytes(
        b'{"rid": "a", "content": "great"}\n{oops\n{"rid": "c", "nope": 1}\n'
        b'{"rid": "d", "content": "caf\xe9"}\n{"rid": "e", "content": "good"}\n'
    )
    ws.write_spec(execution={"max_failure_rate": 0.9})
    assert ws.run("apply") == 0
    assert [r["id"] for r in ws.output()] == ["a", "e"]
    errors = ws.errors()
    assert [(e["line"], e["code"], e["input"]) for e in errors] == [
        (2, "invalid_json", "{oops"),  # unparsable: the raw line
        (3, "missing_field", {"rid": "c", "nope": 1}),  # parsed: the record
        (4, "invalid_encoding", '{"rid": "d", "content": "caf\ufffd"}'),
    ]
    assert fake_provider.count == 2


@pytest.mark.parametrize("good", [1, 1_500])
def test_on_error_fail_stops_with_file_and_line_before_sending(
    ws: Workspace, fake_provider: Any, capsys: Any, good: int
) -> None:
    """However far down the bad line is: a sync job (which otherwise sends as it
    counts) reads its whole input before paying for any item of it."""
    path = ws.root / "data" / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in reviews(good)) + "{oops\n")
    ws.write_spec(input={"on_error": "fail"})
    assert ws.run("apply") == 1
    assert f"reviews.jsonl:{good + 1}:" in capsys.readouterr().err
    assert fake_provider.count == 0


def test_a_json_array_broken_far_down_fails_before_anything_is_sent(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    """One bad element stops a JSON array as a whole: the job is not sent in part first."""
    elements = [json.dumps(r) for r in reviews(1_500)] + ['{"rid": "x", "content": oops}']
    (ws.root / "data" / "reviews.json").write_text("[\n" + ",\n".join(elements) + "\n]\n")
    ws.write_spec(input={"path": "../data/reviews.json"})
    assert ws.run("apply") == 1
    assert "reviews.json:1502:" in capsys.readouterr().err
    assert fake_provider.count == 0


def test_csv_and_json_inputs(ws: Workspace, fake_provider: Any) -> None:
    (ws.root / "data" / "reviews.csv").write_text('rid,text\n1,"great, really"\n2,awful\n')
    ws.write_spec(
        input={"path": "../data/reviews.csv", "content_field": "text"},
        output={"path": "../out/reviews.json"},
    )
    assert ws.run("apply") == 0
    rows = json.loads((ws.root / "out" / "reviews.json").read_text())
    assert [(r["id"], r["result"]["label"]) for r in rows] == [("1", "positive"), ("2", "negative")]


def test_unreachable_provider_exits_4_and_a_later_apply_resends(
    ws: Workspace, fake_provider: Any, monkeypatch: Any, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert ws.run("apply") == 4
    assert "provider failed every request" in capsys.readouterr().err
    assert [e["code"] for e in ws.errors()] == ["provider_error"] * 3
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.base_url)
    assert ws.run("plan", "--exit-code") == 10
    assert ws.run("apply") == 0
    assert fake_provider.count == 3
    assert len(ws.output()) == 3 and ws.errors() == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://u:pw@127.0.0.1:99999/v1", "is not a valid URL (Port out of range"),
        ("api.openai.com/v1", "must be an http:// or https:// URL"),
    ],
)
def test_a_broken_base_url_is_one_config_error_before_anything_is_sent(
    ws: Workspace, fake_provider: Any, monkeypatch: Any, capsys: Any, url: str, words: str
) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec()
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    assert ws.run("apply") == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and "pw@" not in err
    assert fake_provider.count == 0 and not (ws.root / "out" / "reviews.jsonl").exists()


def test_a_profile_whose_base_url_has_a_bad_port_is_a_config_error_not_a_traceback(
    ws: Workspace, monkeypatch: Any, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec()
    profiles = ws.root / "profiles.yaml"
    profiles.write_text(
        "profiles:\n  bad:\n    engine: embedded\n"
        "    provider: {type: openai, base_url: 'http://127.0.0.1:99999/v1', model: m}\n"
    )
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    monkeypatch.setenv("AGENTFLOW_PROFILE", "bad")
    assert ws.run("plan") == 0  # plan sends nothing; the model shows as unresolved
    assert "Traceback" not in capsys.readouterr().err
    assert ws.run("apply") == 2
    err = capsys.readouterr().err
    assert "Port out of range" in err and "provider.base_url" in err and "Traceback" not in err


def test_a_job_that_cannot_read_its_input_does_not_stop_the_others(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    ws.write_input("good.jsonl", reviews(2))
    ws.write_spec("good")
    ws.write_spec("broken")  # data/broken.jsonl does not exist
    assert ws.run("apply", "--json") == 1
    jobs = {j["name"]: j for j in json.loads(capsys.readouterr().out)["jobs"]}
    assert jobs["broken"]["status"] == "error" and "cannot read input" in jobs["broken"]["message"]
    assert jobs["good"]["status"] == "applied"
    assert len(ws.output("good")) == 2


QUOTA = json.dumps({"error": {
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})


def test_a_spent_quota_stops_the_run_at_once_and_a_later_apply_sends_the_rest(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    # a 429 like a rate limit, but waiting does not refill an account with no credit
    ws.write_input("reviews.jsonl", reviews(200))
    ws.write_spec(execution={"concurrency": 4})
    fake_provider.script(status=429, body=QUOTA)
    assert ws.run("apply") == 4
    err = capsys.readouterr().err
    assert "exceeded your current quota" in err and "add credit" in err and "Traceback" not in err
    assert fake_provider.count <= 4  # one refusal each for what was in flight, not 3 for each of 200
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 200  # nothing was recorded as failed
    assert len(ws.output()) == 200 and ws.errors() == []


def test_a_row_refused_for_a_spent_account_is_sent_again_by_the_next_apply() -> None:
    # a sync run stops at the first such refusal; a native batch's re-ask can still fail a
    # row so, and credit added later answers it
    assert is_retryable({"status": "failed", "error": {"code": "insufficient_quota", "message": "m"}})
    assert not is_retryable({"status": "failed", "error": {"code": "auth", "message": "m"}})
