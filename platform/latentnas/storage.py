"""Local paths and pyarrow-filesystem URIs (``file://``, ``s3://``, ``gs://``, ...) behind
one interface, for everything the platform stores: results, Tune state (Tune itself takes
the URI), pretrained checkpoints. Writes are atomic: a temporary name in the same
directory, then a move."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any, Callable

import pyarrow as pa
from pyarrow import fs as pafs

from latentnas.errors import MissingDataError


def is_uri(location: str) -> bool:
    return "://" in location


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` for a local path or a URI pyarrow understands."""
    if is_uri(location):
        try:
            return pafs.FileSystem.from_uri(location)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise MissingDataError(f"cannot open storage {location!r}: {exc}; use a local "
                                   "path or a URI pyarrow supports (file://, s3://, gs://)") \
                from exc
    return pafs.LocalFileSystem(), os.path.abspath(location)


def exists(location: str) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type == pafs.FileType.File


def write_atomic(fs: pafs.FileSystem, path: str, write: Callable[[Any], None]) -> None:
    """Calls ``write(stream)`` on a temporary file next to ``path`` in ``fs``, then moves it
    into place; a failure (an interruption too) leaves ``path`` as it was and removes the
    temporary file. Every file the platform writes goes through here."""
    directory = path.rsplit("/", 1)[0]
    fs.create_dir(directory, recursive=True)
    tmp = f"{directory}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
    try:
        with fs.open_output_stream(tmp) as out:
            write(out)
        fs.move(tmp, path)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except (FileNotFoundError, OSError):
            pass
        raise


def write_file(location: str, write: Callable[[Any], None]) -> None:
    """:func:`write_atomic` for a local path or a URI."""
    fs, path = filesystem(location)
    write_atomic(fs, path, write)


def write_bytes(location: str, data: bytes) -> None:
    write_file(location, lambda out: out.write(data))


def upload(local_file: str, location: str) -> None:
    """Copies ``local_file`` to ``location`` (a file path or URI), atomically."""
    fs, path = filesystem(location)

    def copy(out) -> None:
        with open(local_file, "rb") as src:
            while chunk := src.read(1 << 22):
                out.write(chunk)

    write_atomic(fs, path, copy)


def download(location: str, local_file: str) -> None:
    """Copies ``location`` to ``local_file``, atomically."""
    fs, path = filesystem(location)

    def copy(out) -> None:
        with fs.open_input_stream(path) as src:
            while chunk := src.read(1 << 22):
                out.write(chunk)

    write_file(local_file, copy)


def mirror(location: str, names: tuple[str, ...], fetch: bool = True) -> str:
    """A local copy of the files ``names`` of the remote directory ``location``: each is
    downloaded when ``fetch`` and the remote holds it, and removed from the copy otherwise,
    so a stale local file never stands in for one the remote no longer holds."""
    local = mirror_dir(location)
    for name in names:
        remote, copy = f"{location.rstrip('/')}/{name}", os.path.join(local, name)
        if fetch and exists(remote):
            download(remote, copy)
        elif os.path.exists(copy):
            os.remove(copy)
    return local


def mirror_dir(location: str) -> str:
    """A local cache directory standing for the remote directory ``location``."""
    from latentnas.cache import cache_dir

    return cache_dir("remote", hashlib.sha256(location.encode()).hexdigest()[:16])
