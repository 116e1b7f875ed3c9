"""The same SDK behaviours on both transports: embedded engine and HTTP to the server."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from agentflow_jobs.sdk import (
    AgentFlow,
    APITimeoutError,
    ConflictError,
    NotFoundError,
    OutputError,
    OutputPage,
    UnprocessableEntityError,
)
from tests.fakes.handles import FakeProvider
from tests.fakes.kinds import KINDS

REVIEWS = [
    {"content": "The product is amazing, but delivery was slow."},
    {"content": "Terrible support experience. I waited three hours."},
    {"content": "Good value, I love it."},
]
CATEGORIES = ["positive", "negative", "mixed"]


@pytest.mark.parametrize("provider_kind", KINDS, indirect=True)
def test_classify_returns_a_label_per_item_in_order(client: AgentFlow, chat_fake: FakeProvider) -> None:
    result = client.completions.classify(items=REVIEWS, categories=CATEGORIES)

    assert [r["index"] for r in result.results] == [0, 1, 2]
    assert [r["result"]["label"] for r in result.results] == ["positive", "negative", "positive"]
    assert all(0.0 <= r["result"]["confidence"] <= 1.0 for r in result.results)
    assert result.usage.total_tokens > 0
    assert chat_fake.count == 3


@pytest.mark.parametrize(
    ("method", "fields", "key"),
    [
        ("extract", {"extraction_instructions": "Extract the company."}, None),
        ("summarize", {"summary_instructions": "One sentence."}, "summary"),
        ("enrich", {"fields": [{"name": "segment", "type": "categorical",
                                "valid_values": ["enterprise", "smb"]}]}, "segment"),
        ("run", {"operation": "feedback_analysis", "user_prompt_template": "Analyze: {content}",
                 "response_format": {"type": "json_object"}}, None),
    ],
)
@pytest.mark.parametrize("provider_kind", KINDS, indirect=True)
def test_each_operation_completes_rows(
    client: AgentFlow, method: str, fields: dict[str, object], key: str | None
) -> None:
    result = getattr(client.completions, method)(items=REVIEWS[:2], **fields)

    assert [r["status"] for r in result.results] == ["completed", "completed"]
    assert all(isinstance(r["result"], dict) for r in result.results)
    if key:
        assert all(key in r["result"] for r in result.results)


def test_invalid_request_names_the_field_and_sends_nothing(
    client: AgentFlow, fake_provider: FakeProvider
) -> None:
    with pytest.raises(UnprocessableEntityError, match="categories") as caught:
        client.completions.classify(items=REVIEWS, categories=["positive"])
    assert caught.value.status_code == 422
    with pytest.raises(UnprocessableEntityError, match="catgories"):
        client.batches.submit(operation="label", items=REVIEWS, catgories=CATEGORIES)
    assert fake_provider.count == 0


@pytest.mark.parametrize("items", ["great", b"great", {"content": "great"}])
def test_items_that_are_not_a_list_are_refused_not_split(
    client: AgentFlow, fake_provider: FakeProvider, items: object
) -> None:
    with pytest.raises(UnprocessableEntityError, match="items: expected a list of items"):
        client.completions.classify(items=items, categories=CATEGORIES)  # type: ignore[arg-type]
    with pytest.raises(UnprocessableEntityError, match="wrap a single item in a list"):
        client.batches.submit(operation="label", items=items, categories=CATEGORIES)  # type: ignore[arg-type]
    assert fake_provider.count == 0


def test_a_misspelled_operation_suggests_the_built_in(client: AgentFlow) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        client.batches.submit(operation="sumarize", items=REVIEWS, summary_instructions="short")
    assert str(caught.value) == (
        "operation: unknown operation `sumarize` (did you mean `summarize`?); "
        "a custom operation needs user_prompt_template"
    )
    with pytest.raises(UnprocessableEntityError, match="run needs user_prompt_template"):
        client.completions.run(operation="run", items=REVIEWS)


def test_a_batch_that_can_never_run_is_refused_at_submit(
    client: AgentFlow, fake_provider: FakeProvider
) -> None:
    fields = {"extraction_instructions": "Extract the company.",
              "output_schema": {"type": "nonsense"}}
    with pytest.raises(UnprocessableEntityError) as direct:
        client.completions.extract(items=REVIEWS[:1], **fields)
    with pytest.raises(UnprocessableEntityError) as batched:
        client.batches.submit(operation="extract", items=REVIEWS[:1], **fields)

    assert batched.value.status_code == 422
    assert str(batched.value) == str(direct.value)
    assert client.batches.list() == []
    assert fake_provider.count == 0


def test_submit_wait_and_read_output_every_way(client: AgentFlow, tmp_path: Path) -> None:
    batch = client.batches.submit(operation="label", items=REVIEWS, categories=CATEGORIES)
    assert batch.id.startswith("batch_") and batch.total_items == 3

    done = client.batches.wait(batch.id, timeout=30)
    assert done.status == "completed"
    assert (done.progress.completed, done.progress.failed, done.progress.total) == (3, 0, 3)

    page = client.batches.output(batch.id, format="json", offset=1, limit=1)
    assert isinstance(page, OutputPage)
    assert (page.offset, page.limit, page.total) == (1, 1, 3)
    assert [r["index"] for r in page.results] == [1]
    assert [r["index"] for r in client.batches.iter_output(batch.id, page_size=2)] == [0, 1, 2]

    lines = client.batches.output(batch.id, format="jsonl").splitlines()
    assert [json.loads(line)["result"]["label"] for line in lines] == ["positive", "negative", "positive"]
    table = list(csv.reader(io.StringIO(client.batches.output(batch.id, format="csv"))))
    assert table[0] == ["index", "id", "status", "label", "confidence", "error_code", "error_message"]
    assert [row[3] for row in table[1:]] == ["positive", "negative", "positive"]

    for fmt in ("jsonl", "csv", "json"):
        target = client.batches.download_output(batch.id, tmp_path / f"out.{fmt}", format=fmt)
        assert target.read_text(encoding="utf-8").count("negative") == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    guessed = client.batches.download_output(batch.id, tmp_path / "guess.csv")
    assert guessed.read_text(encoding="utf-8").startswith("index,id,status,label")


def test_unknown_batch_is_not_found(client: AgentFlow) -> None:
    for call in (client.batches.retrieve, client.batches.cancel, client.batches.output):
        with pytest.raises(NotFoundError, match="batch_missing"):
            call("batch_missing")


def test_idempotency_key_replays_and_conflicts(client: AgentFlow, fake_provider: FakeProvider) -> None:
    first = client.batches.submit(operation="label", items=REVIEWS, categories=CATEGORIES,
                                  idempotency_key="chunk-1")
    again = client.batches.submit(operation="label", items=REVIEWS, categories=CATEGORIES,
                                  idempotency_key="chunk-1")
    assert again.id == first.id
    with pytest.raises(ConflictError, match="chunk-1"):
        client.batches.submit(operation="label", items=REVIEWS[:1], categories=CATEGORIES,
                              idempotency_key="chunk-1")
    client.batches.wait(first.id, timeout=30)
    assert fake_provider.count == 3
    assert [b.id for b in client.batches.list()] == [first.id]


def test_cancel_mid_run_keeps_finished_rows(client: AgentFlow, fake_provider: FakeProvider) -> None:
    fake_provider.script(latency_ms=150)
    items = [{"content": f"review {i} is good"} for i in range(40)]
    batch = client.batches.submit(operation="label", items=items, categories=CATEGORIES)
    deadline = time.monotonic() + 10
    while client.batches.retrieve(batch.id).progress.completed < 4 and time.monotonic() < deadline:
        time.sleep(0.05)

    cancelled = client.batches.cancel(batch.id)
    final = client.batches.wait(batch.id, timeout=10)

    assert cancelled.status in ("cancelling", "cancelled") and final.status == "cancelled"
    rows = list(client.batches.iter_output(batch.id))
    assert 4 <= len(rows) < 40 and final.progress.completed == len(rows)
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)
    sent = fake_provider.count
    time.sleep(0.4)
    assert fake_provider.count == sent  # nothing more goes out after a cancel
    assert client.batches.cancel(batch.id).status == "cancelled"  # cancelling again is harmless


def test_wait_times_out(client: AgentFlow, fake_provider: FakeProvider) -> None:
    fake_provider.script(latency_ms=2000, times=1)
    batch = client.batches.submit(operation="label", items=REVIEWS[:1], categories=CATEGORIES)
    with pytest.raises(APITimeoutError, match=batch.id):
        client.batches.wait(batch.id, timeout=0.3, poll_interval=0.1)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("reviews.jsonl", '{"content": "great"}\n\n{"content": "awful"}\n'),
        ("reviews.csv", "content,stars\ngreat,5\nawful,1\n"),
        ("reviews.json", '[{"content": "great"}, "awful"]'),
        ("reviews.txt", "great\nawful\n"),
    ],
)
def test_upload_file_by_extension(client: AgentFlow, tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    batch = client.batches.upload_file(path, operation="classify", categories=["positive", "negative"])
    assert batch.total_items == 2
    client.batches.wait(batch.id, timeout=30)
    labels = [r["result"]["label"] for r in client.batches.iter_output(batch.id)]
    assert labels == ["positive", "negative"]


def test_upload_of_a_broken_file_names_the_line(client: AgentFlow, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"content": "ok"}\n{"content": \n', encoding="utf-8")
    with pytest.raises(UnprocessableEntityError, match=r"bad.jsonl:2"):
        client.batches.upload_file(path, operation="summarize", summary_instructions="short")


def test_failed_items_are_rows_not_errors(client: AgentFlow, fake_provider: FakeProvider) -> None:
    fake_provider.script(status=400, match="poison")
    items = [{"content": "good"}, {"content": "poison pill"}, {"content": ""}]
    batch = client.batches.submit_and_wait(operation="label", items=items, categories=CATEGORIES,
                                           timeout=30)
    assert (batch.status, batch.progress.completed, batch.progress.failed) == ("completed", 1, 2)
    rows = list(client.batches.iter_output(batch.id))
    assert [r["status"] for r in rows] == ["completed", "failed", "failed"]
    table = list(csv.DictReader(io.StringIO(client.batches.output(batch.id, format="csv"))))
    assert table[1]["error_code"] and table[2]["error_message"]


def test_closed_client_reopens_on_next_use(client: AgentFlow) -> None:
    client.close()
    result = client.completions.summarize(items=["some text"], summary_instructions="short")
    assert result.results[0]["status"] == "completed"


def test_bad_output_arguments_name_the_parameter(client: AgentFlow, tmp_path: Path) -> None:
    batch = client.batches.submit_and_wait(operation="label", items=REVIEWS[:1],
                                           categories=CATEGORIES, timeout=30)
    (tmp_path / "out").mkdir()
    for kwargs, name in (({"offset": -1}, "offset"), ({"limit": -1}, "limit"),
                         ({"format": "xml"}, "format")):
        with pytest.raises(UnprocessableEntityError, match=name):
            client.batches.output(batch.id, **kwargs)  # type: ignore[call-overload]
    with pytest.raises(NotFoundError):
        client.batches.output("batch_nope", format="csv")
    with pytest.raises(NotFoundError):
        client.batches.download_output("batch_nope", tmp_path / "out" / "never-written.jsonl")
    assert list((tmp_path / "out").iterdir()) == []
    for size in (0, -1):
        with pytest.raises(UnprocessableEntityError, match=r"^page_size: must be >= 1$"):
            client.batches.iter_output(batch.id, page_size=size)
    missing = tmp_path / "nodir" / "x.csv"
    with pytest.raises(OutputError, match=r"nodir/x\.csv: cannot write") as caught:
        client.batches.download_output(batch.id, missing)
    assert caught.value.path == str(missing)
    assert ".x.csv." not in str(caught.value)
