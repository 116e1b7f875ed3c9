"""Bearer API keys: kept only as SHA-256 hashes, compared in constant time.

Each key is its own tenant: the hash of the key owns the batches it submits. With
authentication switched off (``--no-auth``), every caller is the local owner.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from agentflow_jobs.errors import ConfigError

__all__ = ["LOCAL_OWNER", "KeyRing", "read_keys"]

LOCAL_OWNER = "local"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    """The accepted keys, as hashes only."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._hashes = [_digest(k) for k in dict.fromkeys(k.strip() for k in keys) if k]

    def __len__(self) -> int:
        return len(self._hashes)

    def owner(self, authorization: str | None) -> str | None:
        """The tenant for an ``Authorization`` header value, or None when not accepted."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = _digest(token.strip())
        found = False
        for known in self._hashes:  # no early exit: the time taken says nothing about keys
            found |= hmac.compare_digest(given, known)
        return given.hex() if found else None


def read_keys(path: str | None = None, env: str | None = None) -> list[str]:
    """Keys from a file (one per line, ``#`` comments) and/or ``AGENTFLOW_API_KEYS``."""
    keys: list[str] = []
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read API keys file: {exc.strerror}", path=path) from None
        keys += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    value = env if env is not None else os.environ.get("AGENTFLOW_API_KEYS", "")
    keys += [k.strip() for k in value.split(",") if k.strip()]
    return keys
