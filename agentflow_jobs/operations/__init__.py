"""The five operations: build a model request per item, judge the reply. Pure, no I/O.

``get_operation(kind)`` returns the stateless ``Operation`` for a canonical kind
(``label``, ``extract``, ``summarize``, ``enrich``, ``run``; ``classify`` and custom names
are normalised first, see ``wire.normalize_operation``).
"""

from __future__ import annotations

from agentflow_jobs.operations.base import MAX_ITEM_CHARS, BoundOperation, Operation
from agentflow_jobs.operations.enrich import EnrichOperation
from agentflow_jobs.operations.extract import ExtractOperation
from agentflow_jobs.operations.label import LabelOperation
from agentflow_jobs.operations.run import RunOperation
from agentflow_jobs.operations.summarize import SummarizeOperation
from agentflow_jobs.operations.templates import render, template_fields
from agentflow_jobs.wire import normalize_operation

__all__ = [
    "MAX_ITEM_CHARS",
    "BoundOperation",
    "Operation",
    "get_operation",
    "render",
    "template_fields",
]

_OPERATIONS: dict[str, Operation] = {
    op.kind: op
    for op in (
        LabelOperation(),
        ExtractOperation(),
        SummarizeOperation(),
        EnrichOperation(),
        RunOperation(),
    )
}


def get_operation(kind: str) -> Operation:
    """The operation for ``kind`` (``classify`` → label; other unknown names → run)."""
    canonical, _ = normalize_operation(kind)
    return _OPERATIONS[canonical]
