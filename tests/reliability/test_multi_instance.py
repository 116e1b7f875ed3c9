"""Three `serve` instances on one PostgreSQL store: kill -9 two of them while they work a
5,000-item batch; the third finishes it, every item answered once, and the provider saw
at most the in-flight window again per kill."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.reliability.multi import run_multi_instance

ITEMS = 5000
CONCURRENCY = 16
# per kill: the requests the holder had open, plus the rows back but not yet committed
# (group commit: at most one loop turn of them), each at most `concurrency`
WINDOW = 2 * CONCURRENCY


def test_a_batch_survives_two_of_three_instances_killed(
    tmp_path: Path, pg_url: str, fake_provider_factory: Callable[..., Any]
) -> None:
    fake = fake_provider_factory(latency_ms=5)
    provider = {"type": "openai", "base_url": fake.base_url, "api_key": "sk-test",
                "model": "fake-model", "concurrency": CONCURRENCY, "timeout": 10}
    run = run_multi_instance(tmp_path, fake, pg_url, provider, items=ITEMS, instances=3,
                             kills=2, rng=random.Random(17), timeout=240)
    assert run.kills == 2
    assert len(set(run.holders)) == 2  # two instances held the lease in turn, both killed
    assert run.status == "completed"  # so the third finished it
    assert run.rows == run.distinct_rows == ITEMS  # every item answered, each once
    assert 0 <= run.resent <= run.kills * WINDOW, run
