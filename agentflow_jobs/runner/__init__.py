"""The runner: plan and apply job specs against a state file, incrementally.

Python API (used by the CLI and by ``watch``)::

    with Workspace(state_path, lock_timeout=30) as ws:       # hold the lock across calls
        report = apply_jobs(specs, state=ws, mode=None, force=False, detach=False)
        plans = plan_jobs(specs, state=ws)
"""

from __future__ import annotations

from agentflow_jobs.runner.apply import apply_jobs, blocked_by_upstream, cancel_job, select_jobs
from agentflow_jobs.runner.backend import (
    PgLocation,
    StateLocation,
    as_location,
    is_state_url,
    open_state,
    workspace_key,
)
from agentflow_jobs.runner.copy import copy_state
from agentflow_jobs.runner.costs import CostEstimate, total_cost
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.plan import JobPlan
from agentflow_jobs.runner.progress import NullProgress, Progress
from agentflow_jobs.runner.report import ApplyReport, JobReport
from agentflow_jobs.runner.state import SqliteState, State, default_state_path
from agentflow_jobs.runner.views import job_statuses, lock_holder, plan_jobs
from agentflow_jobs.runner.workspace import Workspace

__all__ = [
    "ApplyReport",
    "CostEstimate",
    "Job",
    "JobPlan",
    "JobReport",
    "NullProgress",
    "PgLocation",
    "Progress",
    "SqliteState",
    "State",
    "StateLocation",
    "Workspace",
    "apply_jobs",
    "as_location",
    "blocked_by_upstream",
    "cancel_job",
    "copy_state",
    "default_state_path",
    "is_state_url",
    "job_statuses",
    "lock_holder",
    "open_state",
    "plan_jobs",
    "select_jobs",
    "total_cost",
    "workspace_key",
]
