"""`watch` as a real process on real files: it follows new specs, appended rows, broken
and fixed specs, bursts of writes and SIGTERM, sending each item to the provider once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from agentflow_jobs.cli import main
from tests.watch.conftest import Project, WatchProcess, rows, wait_for

FAST = ("--debounce-ms", "150")
BROKEN = """\
apiVersion: agentflow-jobs/v1
kind: Job
name: broken
operation: classify
categories: [positive]
input: {path: ../data/broken.jsonl}
output: {path: ../out/broken.jsonl}
"""


def test_a_new_spec_runs_and_appended_rows_send_only_the_new_ones(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    watch = start_watch(*FAST)
    watch.wait_idle()
    project.write_input("reviews", rows(3))
    project.write_spec("reviews")
    wait_for(lambda: len(project.output("reviews")) == 3, what="the output of a dropped spec")
    assert project.fake.count == 3

    project.write_input("reviews", rows(2, start=3), append=True)
    wait_for(lambda: len(project.output("reviews")) == 5, what="the appended rows in the output")
    assert [row["id"] for row in project.output("reviews")] == [f"r{i}" for i in range(5)]
    assert project.fake.count == 5
    assert all("review 3" in c or "review 4" in c for c in project.sent_contents()[3:])
    assert watch.process.poll() is None


def test_a_deleted_spec_stops_being_watched_and_keeps_its_output(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    project.write_input("reviews", rows(2))
    spec = project.write_spec("reviews")
    watch = start_watch(*FAST)
    watch.wait_event("reconcile")
    before = project.output_path("reviews").read_bytes()
    spec.unlink()
    event = wait_for(lambda: watch.reconciles()[1:], what="a reconcile for the deleted spec")[0]
    assert event["changed"] == ["specs/reviews.yaml"]
    assert event["jobs"] == []
    watch.wait_event("watching", count=2)
    project.write_input("reviews", rows(2, start=2), append=True)
    time.sleep(0.5)  # three quiet periods: long enough for a (wrong) reconcile to start
    assert project.fake.count == 2
    assert project.output_path("reviews").read_bytes() == before


def test_an_invalid_spec_is_logged_with_its_location_and_fixing_it_runs(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    project.write_input("good", rows(2))
    project.write_spec("good")
    watch = start_watch(*FAST)
    watch.wait_event("reconcile")
    good_before = project.output_path("good").read_bytes()

    project.write_input("broken", rows(2, start=10))
    bad = project.root / "specs" / "broken.yaml"
    bad.write_text(BROKEN)
    problem = watch.wait_event("invalid spec")[0]
    assert problem["location"] == "specs/broken.yaml:5:13"
    assert "at least 2" in problem["reason"]
    time.sleep(0.3)
    assert watch.process.poll() is None
    assert project.fake.count == 2
    assert project.output_path("good").read_bytes() == good_before
    assert not project.output_path("broken").exists()

    bad.write_text(project.spec_text("broken"))
    wait_for(lambda: len(project.output("broken")) == 2, what="the fixed spec's output")
    assert project.fake.count == 4
    assert project.output_path("good").read_bytes() == good_before


def test_three_quick_writes_of_a_spec_make_one_run(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    project.write_input("reviews", rows(4))
    spec = project.write_spec("reviews")
    watch = start_watch("--debounce-ms", "400")
    watch.wait_idle()
    assert project.fake.count == 4
    final = project.spec_text("reviews", categories=["positive", "negative", "mixed"])
    # an editor's save: truncate, write half, write the rest
    for text in ("", final[: len(final) // 2], final):
        spec.write_text(text)
        time.sleep(0.1)
    wait_for(lambda: project.fake.count == 8, what="the edited spec re-running its items")
    watch.wait_event("reconcile", count=2)
    time.sleep(0.5)  # longer than the quiet period: a second reconcile would show up now
    later = watch.reconciles()[1:]
    assert len(later) == 1, later
    assert later[0]["outcome"] == {"reviews": "applied"}
    assert watch.named("invalid spec") == []  # the half-written file was never loaded
    assert project.fake.count == 8


def test_sigterm_mid_run_exits_cleanly_and_apply_sends_only_the_rest(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    total = 150
    project.write_input("reviews", rows(total))
    project.write_spec("reviews", execution={"concurrency": 4, "chunk_size": 4})
    project.fake.script(latency_ms=30)
    watch = start_watch(*FAST)
    wait_for(lambda: project.fake.count >= 20, what="the run to be under way")
    assert watch.stop(signal.SIGTERM) == 0, watch.stderr
    assert "Traceback" not in watch.stderr
    answered = project.fake.count
    assert answered < total
    assert watch.reconciles()[-1]["interrupted"] is True
    # every answered item was kept: the next apply sends exactly the others
    assert main(["apply", "specs"]) == 0
    assert project.fake.count == total
    assert [row["id"] for row in project.output("reviews")] == [f"r{i}" for i in range(total)]


def test_apply_while_watch_holds_the_state_exits_5(
    project: Project, start_watch: Callable[..., WatchProcess], capsys: Any
) -> None:
    project.write_input("reviews", rows(1))
    project.write_spec("reviews")
    watch = start_watch(*FAST)
    watch.wait_idle()
    capsys.readouterr()
    assert main(["apply", "specs"]) == 5
    assert "(watch," in capsys.readouterr().err
    assert watch.stop(signal.SIGINT) == 0


def test_a_prompt_file_outside_the_spec_dir_is_watched(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    prompt = project.root / "prompts" / "ask.txt"
    prompt.parent.mkdir()
    prompt.write_text("Say something about: {content}")
    project.write_input("notes", rows(3))
    project.write_spec(
        "notes", operation="run", categories=None, user_prompt_template_file="../prompts/ask.txt"
    )
    watch = start_watch(*FAST)
    watch.wait_event("reconcile")
    assert project.fake.count == 3
    prompt.write_text("Describe in one word: {content}")
    wait_for(lambda: project.fake.count == 6, what="the items re-sent with the new prompt")
    assert all(c.startswith("Describe in one word") for c in project.sent_contents()[3:])
    assert watch.wait_event("reconcile", count=2)[1]["changed"] == ["prompts/ask.txt"]


def test_a_failing_job_is_logged_and_runs_once_its_input_exists(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    project.write_input("good", rows(1))
    project.write_spec("good")
    project.write_spec("later")  # its input data/later.jsonl does not exist yet
    watch = start_watch(*FAST)
    failed = watch.wait_event("job failed")[0]
    assert failed["job"] == "later"
    assert failed["location"] == "specs/later.yaml:1"
    assert "later.jsonl" in failed["reason"]
    assert len(project.output("good")) == 1
    project.write_input("later", rows(2, start=10))
    wait_for(lambda: len(project.output("later")) == 2, what="the job whose input appeared")
    assert watch.process.poll() is None
    assert project.fake.count == 3


def test_jobs_downstream_of_a_changed_input_run_too(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    project.write_input("first", rows(2))
    project.write_spec("first")
    project.write_spec(
        "second",
        operation="summarize",
        categories=None,
        input={"path": "../out/first.jsonl", "content_field": "id"},
    )
    watch = start_watch(*FAST)
    watch.wait_event("reconcile")
    assert (len(project.output("first")), len(project.output("second"))) == (2, 2)
    project.write_input("first", rows(1, start=2), append=True)
    event = wait_for(lambda: watch.reconciles()[1:], what="the reconcile after the append")[0]
    assert event["changed"] == ["data/first.jsonl"]
    assert event["outcome"] == {"first": "applied", "second": "applied"}
    assert (len(project.output("first")), len(project.output("second"))) == (3, 3)
    assert project.fake.count == 2 + 2 + 1 + 1
    time.sleep(0.4)  # the outputs it wrote itself are not changes to react to
    assert len(watch.reconciles()) == 2


def test_a_second_ctrl_c_aborts_at_once_with_130(
    project: Project, start_watch: Callable[..., WatchProcess]
) -> None:
    project.write_input("reviews", rows(4))
    project.write_spec("reviews")
    project.fake.script(latency_ms=20_000)
    watch = start_watch(*FAST)
    wait_for(lambda: project.fake.stats()["in_flight"] > 0, what="a request in flight")
    watch.process.send_signal(signal.SIGINT)
    wait_for(lambda: "stopping" in watch.stderr, what="the first Ctrl-C to be taken")
    started = time.monotonic()
    assert watch.stop(signal.SIGINT) == 130
    assert time.monotonic() - started < 5
