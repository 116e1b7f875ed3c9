"""Every Python block of the user's SDK reference page, run verbatim on both transports.

The page is read at test time from ``../shared/reference/`` beside the repository (in CI
the shared folder sits beside the clone). The blocks run in order in one namespace, as a
reader pasting them into one session would, against a ``prod`` profile that points at
the embedded engine in one run and at a live server in the other, each with an OpenAI
and with an Anthropic provider behind the engine.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from agentflow_jobs.sdk import AgentFlow, Batch, CompletionResult, OutputPage
from tests.fakes.handles import FakeProvider
from tests.fakes.kinds import KINDS

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO.parent / "shared" / "reference" / "agentflow-sdk-batch-processing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
TRANSCRIPT = (
    "Alice: we ship the beta on Friday. Bob: I will write the migration guide. "
    "Carol: the risk is the database upgrade, we need a rollback plan."
)
REVIEWS = ["Great phone, love it", "Awful battery", "Good screen but bad speaker"]


def reference_blocks() -> list[str]:
    if not PAGE.exists():
        pytest.skip(f"reference page not found at {PAGE} (the shared folder sits beside the repo)")
    blocks = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 15, f"expected the page's Python blocks, found {len(blocks)}"
    return blocks


def real_batch(profile: str) -> str:
    with AgentFlow.from_profile(profile) as client:
        batch = client.batches.submit_and_wait(
            operation="label",
            items=[{"content": "The product is amazing"}, {"content": "Terrible support"}],
            categories=["positive", "negative", "mixed"],
            timeout=30,
        )
        assert batch.status == "completed"
        return batch.id


@pytest.mark.parametrize("provider_kind", KINDS, indirect=True)
def test_every_reference_block_runs_unchanged(
    prod_profile: str,
    transport: str,
    chat_fake: FakeProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = reference_blocks()
    batch_id = real_batch(prod_profile)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "reviews.jsonl").write_text(
        "".join(json.dumps({"content": r}) + "\n" for r in REVIEWS), encoding="utf-8"
    )
    monkeypatch.chdir(workdir)
    threads = set(threading.enumerate())
    namespace: dict[str, Any] = {"transcript": TRANSCRIPT, "__name__": "reference"}

    try:
        for number, source in enumerate(blocks, start=1):
            code = compile(source.replace("batch_abc123", batch_id), f"<block {number}>", "exec")
            exec(code, namespace)
            check_block(number, source, namespace, batch_id)
    finally:
        if isinstance(namespace.get("client"), AgentFlow):
            namespace["client"].close()

    printed = capsys.readouterr().out.splitlines()
    # Classify: "<label> <confidence>" per review; Async Batches: "<id> <status> 2"
    assert printed[0].startswith("positive ") and printed[1].startswith("negative ")
    assert all(0.0 <= float(line.split()[1]) <= 1.0 for line in printed[:2])
    assert any(line.startswith("batch_") and line.endswith(" 2") for line in printed)
    # Retrieve Status prints the status and progress; both output loops print 2 results each
    assert any(line.startswith("completed completed=2 failed=0 total=2") for line in printed)
    assert sum(line.startswith("{'label': ") for line in printed) == 4
    assert (workdir / "batch-output.jsonl").read_text().count("\n") == 2
    assert (workdir / "batch-output.csv").read_text().splitlines()[0].startswith("index,id,status")
    uploaded = namespace["batch"]
    assert isinstance(uploaded, Batch) and uploaded.total_items == len(REVIEWS)
    with AgentFlow.from_profile(prod_profile) as client:
        done = client.batches.wait(uploaded.id, timeout=30)
        assert done.progress.completed == len(REVIEWS)
        assert all("text" in row["result"] for row in client.batches.iter_output(uploaded.id))
    left = [t for t in threading.enumerate() if t not in threads and t.name == "agentflow-sdk-loop"]
    assert not left, f"{transport}: SDK threads left running: {left}"


def check_block(number: int, source: str, ns: dict[str, Any], batch_id: str) -> None:
    """Each block did real work: completed rows, a real batch, real output."""
    where = f"block {number}"
    if "client.completions." in source:
        result = ns["result"]
        assert isinstance(result, CompletionResult), where
        assert result.results and all(r["status"] == "completed" for r in result.results), where
    if "batches.submit(" in source or "submit_and_wait(" in source:
        batch = ns["batch"]
        assert isinstance(batch, Batch) and batch.id != batch_id, where
    if "submit_and_wait(" in source:
        assert ns["batch"].status == "completed", where
    if "batches.retrieve(" in source or "batches.wait(" in source:
        assert ns["batch"].id == batch_id and ns["batch"].progress.total == 2, where
    if "batches.output(" in source and "format=\"json\"" in source:
        page = ns["page"]
        assert isinstance(page, OutputPage) and len(page.results) == 2, where
    if "jsonl_text" in source:
        assert len(ns["jsonl_text"].splitlines()) == 2, where
        assert len(ns["csv_text"].splitlines()) == 3, where
