"""pytest fixtures for the fakes (filled in by the engine issue)."""
