"""Object stores through fsspec: reading inputs, atomic outputs, remote fingerprints.

Credentials are never in a spec: each store's fsspec package reads them the way its
cloud SDK does (s3fs: ``AWS_*`` variables, ``~/.aws``, instance roles; ``AWS_ENDPOINT_URL``
for an S3-compatible server), and no message here names more than the URL.

Atomic output on a store that has no rename (S3, GCS, Azure blobs):

1. the rows go to a temporary object ``.<name>.<pid>.<token>.tmp`` beside the target;
2. closing it completes the upload (a multipart upload is invisible until then);
3. the temporary object is copied over the target, then deleted.

A reader sees the previous object until step 3's copy lands, then the whole new one:
each of these stores replaces an object atomically on PUT/COPY (S3 has been strongly
consistent for reads after writes since 2020). A crash leaves the previous object and at
worst a stray temporary object. ``file://`` URLs are local files and use the local
writer's fsync-and-rename instead.

A remote input's fingerprint is what ``fs.info`` says (ETag, size, modification time):
an unchanged remote input plans as unchanged without downloading it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import uuid
from pathlib import Path
from typing import IO, Any, BinaryIO

from agentflow_jobs.errors import InputError, OutputError
from agentflow_jobs.io.locations import url_scheme
from agentflow_jobs.io.writers import AtomicFile
from agentflow_jobs.urls import display_url

__all__ = ["AtomicObject", "local_path", "open_atomic", "open_remote", "remote_fingerprint"]

# the fsspec package that serves each scheme, for the message when it is missing
_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


def local_path(location: str | Path) -> Path | None:
    """The local file a location names (a path, or a ``file://`` URL); None for a store."""
    if isinstance(location, Path) or url_scheme(location) is None:
        return Path(location)
    return Path(location.removeprefix("file://")) if url_scheme(location) == "file" else None


def open_atomic(location: str | Path) -> AtomicFile | AtomicObject:
    """The atomic writer of a location: fsync-and-rename locally, temp-and-copy on a store."""
    local = local_path(location)
    return AtomicFile(local) if local is not None else AtomicObject(str(location))


def _filesystem(url: str, error: type[InputError | OutputError] = InputError) -> tuple[Any, str]:
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        package = _PACKAGES.get(url_scheme(url) or "", "the fsspec package for it")
        raise error(
            f"reading or writing {url_scheme(url)}:// needs {package} (pip install {package})",
            path=display_url(url),
        ) from exc
    return fs, path


def open_remote(url: str) -> BinaryIO:
    """A remote object opened for reading (seekable, read in blocks)."""
    fs, path = _filesystem(url)
    try:
        handle: BinaryIO = fs.open(path, "rb")
    except FileNotFoundError:
        raise InputError("cannot read input: no such object", path=display_url(url)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read input: {exc}", path=display_url(url)) from None
    return handle


def remote_fingerprint(url: str) -> str | None:
    """``size:mtime:etag`` from the store's metadata; None when the object is missing.

    A store that reports neither an ETag nor a time is read once and hashed instead.
    """
    fs, path = _filesystem(url)
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
    except (OSError, ValueError):
        return None
    etag = str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or "").strip('"')
    mtime = info.get("LastModified") or info.get("mtime") or info.get("created") or ""
    if not etag and not mtime:
        digest = hashlib.sha256()
        with fs.open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        etag = digest.hexdigest()
    return f"{info.get('size')}:{mtime}:{etag}"


class AtomicObject:
    """An object that replaces ``url`` only when committed (see the module's steps)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.path = _filesystem(url, OutputError)
        folder, _, name = self.path.rpartition("/")
        token = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.temp = f"{folder}/.{name}.{token}.tmp" if folder else f".{name}.{token}.tmp"
        try:
            self.stream: BinaryIO = self.fs.open(self.temp, "wb")
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot write the output ({exc})", path=display_url(url)) from None
        self.handle: IO[str] = io.TextIOWrapper(self.stream, encoding="utf-8", newline="")

    def commit(self) -> None:
        self.handle.close()  # completes the temporary object's upload
        try:
            self.fs.mv(self.temp, self.path)
        except (OSError, ValueError) as exc:
            self._remove_temp()
            raise OutputError(f"cannot replace the output ({exc})", path=display_url(self.url)) from None
        self.fs.invalidate_cache(self.path)

    def abort(self) -> None:
        discard = getattr(self.stream, "discard", None)
        if callable(discard):  # an upload in progress is dropped, not completed
            with contextlib.suppress(Exception):
                discard()
        with contextlib.suppress(Exception):
            self.handle.close()
        self._remove_temp()

    def _remove_temp(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm(self.temp)
