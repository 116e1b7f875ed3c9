"""execution.concurrency bounds the requests the provider sees in flight, whatever chunk_size."""

from __future__ import annotations

from typing import Any

import pytest

from tests.runner.conftest import Workspace, reviews


@pytest.mark.parametrize(
    ("concurrency", "chunk_size"), [(1, 64), (2, 64), (2, 5), (5, 3), (8, 20), (16, 64)]
)
def test_requests_in_flight_never_exceed_concurrency(
    ws: Workspace, fake_provider: Any, concurrency: int, chunk_size: int
) -> None:
    total = max(24, 4 * concurrency)
    ws.write_input("reviews.jsonl", reviews(total))
    ws.write_spec(execution={"concurrency": concurrency, "chunk_size": chunk_size})
    fake_provider.script(latency_ms=30)  # slow enough that requests overlap
    assert ws.run("apply") == 0
    assert fake_provider.count == total
    assert len(ws.output()) == total
    assert fake_provider.max_in_flight <= concurrency
    # the bound is used, not undershot: the items do run side by side
    assert fake_provider.max_in_flight >= min(concurrency, 2)
