"""``/metrics`` in the Prometheus text format, written by hand (no client library).

Batches by status come from the store; items processed, provider errors and spend
(USD per tenant and model, and the answers of models with no known price) from the
batch service's counters; request latency from the HTTP gate.
"""

from __future__ import annotations

import bisect
import threading
from typing import get_args

from agentflow_jobs.engine.batches import BatchService
from agentflow_jobs.wire import BatchStatus

__all__ = ["Latency", "render"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATUSES = get_args(BatchStatus)
# row error codes that mean the model provider, not the item, was at fault
PROVIDER_CODES = frozenset({"rate_limited", "provider_error", "timeout", "auth", "insufficient_quota",
                            "bad_request"})


class Latency:
    """A histogram of request durations in seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.total += seconds

    def lines(self, name: str) -> list[str]:
        with self._lock:
            counts, total = list(self.counts), self.total
        out, running = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        out += [f"{name}_sum {total:.6f}", f"{name}_count {running}"]
        return out


def render(service: BatchService, latency: Latency) -> str:
    lines = [
        "# HELP agentflow_batches Batches in the store by status.",
        "# TYPE agentflow_batches gauge",
    ]
    counts = service.store.status_counts()
    lines += [f'agentflow_batches{{status="{s}"}} {counts.get(s, 0)}' for s in STATUSES]
    lines += [
        "# HELP agentflow_items_processed_total Items finished since start, by outcome.",
        "# TYPE agentflow_items_processed_total counter",
    ]
    for status in ("completed", "failed"):
        lines.append(
            f'agentflow_items_processed_total{{status="{status}"}} {service.rows_processed[status]}'
        )
    lines += [
        "# HELP agentflow_provider_errors_total Items that failed because the provider did.",
        "# TYPE agentflow_provider_errors_total counter",
    ]
    lines += [
        f'agentflow_provider_errors_total{{code="{c}"}} {service.row_errors[c]}'
        for c in sorted(PROVIDER_CODES)
    ]
    lines += _spend_lines(service)
    lines += [
        "# HELP agentflow_http_request_duration_seconds Time to answer an HTTP request.",
        "# TYPE agentflow_http_request_duration_seconds histogram",
        *latency.lines("agentflow_http_request_duration_seconds"),
    ]
    return "\n".join(lines) + "\n"


def _spend_lines(service: BatchService) -> list[str]:
    spend = service.spend
    lines = [
        "# HELP agentflow_spend_usd_total USD the answers cost at the model's price, by tenant and model.",
        "# TYPE agentflow_spend_usd_total counter",
    ]
    keys = spend.keys()
    lines += [f"agentflow_spend_usd_total{{{_labels(*k)}}} {spend.usd[k]:.9f}" for k in keys]
    lines += [
        "# HELP agentflow_unpriced_items_total Answers of a model with no known price (not $0).",
        "# TYPE agentflow_unpriced_items_total counter",
    ]
    lines += [f"agentflow_unpriced_items_total{{{_labels(*k)}}} {spend.unpriced[k]}" for k in keys]
    return lines


def _labels(tenant: str, model: str) -> str:
    # a tenant is the hash of its API key: 12 hex digits name it without giving the hash away
    return f'tenant="{_escape(tenant[:12])}",model="{_escape(model)}"'


def _escape(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
