"""Job specs: YAML files describing LLM batch jobs, loaded and validated with positions.

``load_specs(paths, root=None)`` returns the ``JobSpec`` of every job or raises one
``SpecError`` listing every problem in every file as ``path:line:col: message``.
"""

from __future__ import annotations

from agentflow_jobs.spec.load import discover_spec_files, find_root, load_specs
from agentflow_jobs.spec.models import ExecutionSpec, InputSpec, JobSpec, OutputSpec
from agentflow_jobs.spec.schema import job_spec_schema, schema_text
from agentflow_jobs.spec.tolerant import SpecLoad, load_tolerant

__all__ = [
    "ExecutionSpec",
    "InputSpec",
    "JobSpec",
    "OutputSpec",
    "SpecLoad",
    "discover_spec_files",
    "find_root",
    "job_spec_schema",
    "load_specs",
    "load_tolerant",
    "schema_text",
]
