"""The AgentFlow SDK: ``AgentFlow`` / ``AsyncAgentFlow`` over an embedded or HTTP engine.

``from agentflow import AgentFlow`` re-exports this module. See
``../shared/reference/agentflow-sdk-batch-processing.md`` for the surface it implements.
"""

from __future__ import annotations

from agentflow_jobs.errors import (
    AgentFlowError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    InputError,
    InternalServerError,
    Interrupted,
    JobFailedError,
    LockedError,
    NotFoundError,
    OutputError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    SpecError,
    StateError,
    UnprocessableEntityError,
    UsageError,
)
from agentflow_jobs.sdk.client import AgentFlow, AsyncAgentFlow
from agentflow_jobs.wire import Batch, BatchProgress, CompletionResult, OutputPage, Usage

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AgentFlow",
    "AgentFlowError",
    "AsyncAgentFlow",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchProgress",
    "CompletionResult",
    "ConfigError",
    "ConflictError",
    "InputError",
    "InternalServerError",
    "Interrupted",
    "JobFailedError",
    "LockedError",
    "NotFoundError",
    "OutputError",
    "OutputPage",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "SpecError",
    "StateError",
    "UnprocessableEntityError",
    "Usage",
    "UsageError",
]
