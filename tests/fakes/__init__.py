"""Test fakes: a scripted OpenAI-compatible provider (in a thread or its own process).

Imports are lazy so ``python -m tests.fakes.provider`` does not import itself twice.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FAULTS", "FakeCore", "FakeProvider", "FakeProviderApp", "FakeProviderProcess", "RawServer", "Rule"]


def __getattr__(name: str) -> Any:
    if name in ("FakeProvider", "FakeProviderProcess"):
        from tests.fakes import handles

        return getattr(handles, name)
    if name in ("FAULTS", "Rule"):
        from tests.fakes import script

        return getattr(script, name)
    if name in ("FakeCore", "RawServer"):
        from tests.fakes import provider

        return getattr(provider, name)
    if name == "FakeProviderApp":
        from tests.fakes import asgi

        return asgi.FakeProviderApp
    raise AttributeError(name)
