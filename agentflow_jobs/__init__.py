"""agentflow-jobs: a declarative runner for LLM batch work."""

__version__ = "0.1.0"
