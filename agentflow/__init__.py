"""The AgentFlow SDK: ``from agentflow import AgentFlow``.

A thin re-export of :mod:`agentflow_jobs.sdk`; no logic lives here.
"""

from agentflow_jobs.sdk import *  # noqa: F403
from agentflow_jobs.sdk import __all__ as __all__
