"""The AgentFlow SDK (built in the SDK issue)."""

__all__: list[str] = []
