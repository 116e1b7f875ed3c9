"""A job as the runner runs it: its ``JobSpec`` plus what is derived from the spec once.

The runner reads every setting from the spec itself (``job.spec``). What it derives,
once per job, is the operation prepared through the SDK (``sdk.prepared``: the fields
that key the ledger, the template fields, what the engine would refuse unsent) and the
identity of the model that answers (from the profile, never a secret).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentflow_jobs.errors import ConfigError
from agentflow_jobs.sdk.prepared import PreparedOperation, prepare_operation
from agentflow_jobs.sdk.profiles import load_profile
from agentflow_jobs.spec import JobSpec

__all__ = ["Job", "model_identity"]


@dataclass(frozen=True, slots=True)
class Job:
    """One job spec with its prepared operation and model identity."""

    spec: JobSpec
    operation: PreparedOperation
    model_identity: str

    @classmethod
    def from_spec(cls, spec: JobSpec) -> Job:
        """Prepare ``spec`` (paths already absolute) for planning and sending."""
        operation = prepare_operation(
            spec.operation_kind,
            spec.model,
            content_field=spec.input.content_field,
            **spec.request_fields(),
        )
        return cls(spec, operation, model_identity(spec.model, spec.resolved_profile))

    def send_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``completions.run`` / ``batches.submit`` besides the items."""
        return {**self.operation.fields, "max_attempts": self.spec.execution.max_attempts}

    # the names watch and the reports read
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def output_path(self) -> Path:
        return self.spec.output_path

    @property
    def errors_path(self) -> Path:
        return self.spec.errors_path


def model_identity(model: str | None, profile_name: str | None) -> str:
    """Which model answers this job (the profile resolves it; never a secret).

    Pointing the profile at another endpoint, model or model file is a model change: the
    ledger misses and every item is sent again.
    """
    try:
        return load_profile(profile_name).model_identity(model)
    except (ConfigError, ImportError, OSError):
        return f"{profile_name or 'local'}:unresolved"
