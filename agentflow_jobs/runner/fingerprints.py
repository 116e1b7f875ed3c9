"""Fingerprints: how the runner tells that a spec, an input or an output has changed.

A file's quick fingerprint is its size and modification time; an input's adds its
SHA-256, so a touched but identical input still plans as unchanged. An object in a store
(s3://, gs://, …) is fingerprinted from its metadata (ETag, size, modification time),
never downloaded. A job's fingerprint
is what the state remembers of its spec: the spec hash, the output settings and the
model that answers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agentflow_jobs.hashing import content_hash
from agentflow_jobs.io import remote_fingerprint
from agentflow_jobs.io.locations import location_kind
from agentflow_jobs.io.stores import local_path
from agentflow_jobs.runner.job import Job

__all__ = [
    "file_fingerprint",
    "input_fingerprint",
    "job_fingerprint",
    "output_identity",
    "same_input",
]


def file_fingerprint(path: Path | str) -> str | None:
    """Size and modification time: cheap, and changes whenever the file is rewritten.

    An object in a store has the store's (see ``io.stores.remote_fingerprint``); a table
    has none (None: its drift is not watched; the spec and the ledger decide)."""
    if isinstance(path, str):
        if location_kind(path) == "sql":
            return None
        if _remote(path):
            return remote_fingerprint(path)
        path = local_path(path) or Path(path)
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def input_fingerprint(path: Path | str) -> str | None:
    """``size:mtime:sha256``: a touched but identical input is still recognised. A remote
    input's is the store's metadata only: it is never downloaded to be fingerprinted."""
    quick = file_fingerprint(path)
    if _remote(path):
        return quick
    path = local_path(path) or Path(path)
    if quick is None:
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return f"{quick}:{digest.hexdigest()}"


def same_input(stored: str | None, path: Path | str) -> bool:
    """Whether ``path`` still holds what ``stored`` fingerprinted (hashing only if touched)."""
    if stored is None:
        return False
    quick = file_fingerprint(path)
    if _remote(path):
        return quick == stored
    if quick is not None and stored.startswith(quick + ":"):
        return True
    if quick is None or quick.split(":", 1)[0] != stored.split(":", 1)[0]:
        return False  # another size: changed, no need to read it
    current = input_fingerprint(path)
    return current is not None and current.rsplit(":", 1)[-1] == stored.rsplit(":", 1)[-1]


def _remote(path: Path | str) -> bool:
    """Whether ``path`` is an object in a store (not a local file, nor a table)."""
    return isinstance(path, str) and location_kind(path) == "url" and local_path(path) is None


def job_fingerprint(job: Job) -> str:
    """What the state remembers of the spec: spec hash, output settings, model."""
    return "|".join((job.spec.spec_hash, output_identity(job), job.model_identity))


def output_identity(job: Job) -> str:
    """What the output file depends on besides the ledger (format, columns, paths)."""
    spec = job.spec
    # a table's name and write mode join only when set: file outputs keep their identity
    table = (spec.output.table, spec.output.write) if spec.output.table else ()
    return content_hash(
        str(spec.output_path),
        spec.output_format,
        spec.output.include_input,
        spec.output.include_provenance,
        str(spec.errors_path),
        spec.input.id_field,
        *table,
    )
