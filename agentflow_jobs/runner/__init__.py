"""The runner: plan and apply job specs against a state file, incrementally.

Python API (used by the CLI and by ``watch``)::

    with Workspace(state_path, lock_timeout=30) as ws:       # hold the lock across calls
        report = apply_jobs(specs, state=ws, mode=None, force=False, detach=False)
        plans = plan_jobs(specs, state=ws)
"""

from __future__ import annotations

from agentflow_jobs.runner.apply import apply_jobs, blocked_by_upstream, cancel_job, select_jobs
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.plan import JobPlan
from agentflow_jobs.runner.progress import NullProgress, Progress
from agentflow_jobs.runner.report import ApplyReport, JobReport
from agentflow_jobs.runner.state import State, default_state_path
from agentflow_jobs.runner.views import job_statuses, plan_jobs
from agentflow_jobs.runner.workspace import Workspace

__all__ = [
    "ApplyReport",
    "Job",
    "JobPlan",
    "JobReport",
    "NullProgress",
    "Progress",
    "State",
    "Workspace",
    "apply_jobs",
    "blocked_by_upstream",
    "cancel_job",
    "default_state_path",
    "job_statuses",
    "plan_jobs",
    "select_jobs",
]
