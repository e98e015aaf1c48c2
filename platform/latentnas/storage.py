"""Local paths and pyarrow-filesystem URIs (``file://``, ``s3://``, ``gs://``, ...) behind
one interface, for everything the platform stores: results, Tune state (Tune itself takes
the URI), pretrained checkpoints. Writes are atomic: a temporary name in the same
directory, then a move."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from typing import Any, Callable

import pyarrow as pa
from pyarrow import fs as pafs

from latentnas.errors import MissingDataError, StorageError, short, storage_error

#: URI schemes pyarrow opens (``hdfs`` and ``viewfs`` need Hadoop's client libraries)
SCHEMES = ("file", "s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")
#: seconds a store has to answer the first probe before a command gives up on it
#: (``LATENTNAS_STORAGE_TIMEOUT`` overrides)
PROBE_SECONDS = 20.0
_SCHEME_LIKE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):/*")
_probed: set[tuple[str, bool]] = set()


def is_uri(location: str) -> bool:
    return "://" in location


def check_location(location: str, what: str = "storage") -> str:
    """``location`` if it is a local path or a well-formed URI of a scheme pyarrow opens;
    :class:`StorageError` otherwise. No I/O: this is the check settings get when read."""
    if not isinstance(location, str) or not location.strip():
        raise StorageError(f"{what} must be a directory or a URI, got {short(location)}")
    found = _SCHEME_LIKE.match(location)
    if "://" in location:
        scheme, rest = location.split("://", 1)
        if scheme.lower() not in SCHEMES:
            raise StorageError(f"{what} {short(location)}: unsupported URI scheme "
                               f"{short(scheme)}; use a local path or one of "
                               f"{', '.join(s + '://' for s in SCHEMES)}")
        if scheme.lower() == "file" and not rest.startswith("/"):
            raise StorageError(f"{what} {short(location)}: a file:// URI needs an absolute "
                               f"path, file:///abs/path (three slashes); or give the path "
                               "itself")
        if scheme.lower() != "file" and not rest.strip("/"):
            raise StorageError(f"{what} {short(location)} names no bucket; write "
                               f"{scheme}://BUCKET/path")
    elif found and found.group(1).lower() in SCHEMES:
        raise StorageError(f"{what} {short(location)} looks like a URI missing a slash; write "
                           f"{found.group(1)}://{location[found.end():]}, or ./"
                           f"{location} for a local folder of that name")
    return location


def probe(location: str, write: bool = True, what: str = "storage") -> None:
    """Checks, before work starts, that ``location`` can be read (and, with ``write``,
    written): a local directory by creating it and a probe file; a URI from a child process
    with a deadline (``PROBE_SECONDS``), so a bucket without credentials or network gives
    one line in seconds instead of a hang, and a library's noise stays out of the
    terminal. Each location is probed once per process."""
    check_location(location, what)
    if (location, write) in _probed or any(
            location.startswith(done.rstrip("/") + "/") for done, writes in _probed if writes):
        return      # it, or a folder above it, answered already (results under --storage)
    local = location[len("file://"):] if location.lower().startswith("file://") else location
    if "://" not in local:
        _probe_local(os.path.abspath(local), write, what)
    else:
        _probe_uri(location, write, what)
    _probed.add((location, write))


def probe_file(location: str, what: str = "output") -> None:
    """:func:`probe` for a file to be written: its folder must take a file, and nothing but
    a regular file (or a link to one) may stand at its place."""
    location = _file_target(location, what)
    probe(location.rstrip("/").rsplit("/", 1)[0] or "/", what=what)


def _file_target(location: str, what: str) -> str:
    """Where a file written to ``location`` lands: a local symbolic link resolved to its
    target; :class:`StorageError` if a folder, a device or a pipe stands there."""
    check_location(location, what)
    if is_uri(location):
        return location
    location = os.path.realpath(location)
    if os.path.exists(location) and not os.path.isfile(location):
        kind = "a folder" if os.path.isdir(location) else "not a regular file"
        raise StorageError(f"cannot write {what} {location}: it is {kind}; give a file name")
    return location


def _probe_local(path: str, write: bool, what: str) -> None:
    if not write:
        return           # a local read fails at once, and its reader names the cause
    if os.path.exists(path) and not os.path.isdir(path):
        raise StorageError(f"{what} {path} is a file, not a directory; give a directory "
                           "(created if missing) or a URI")
    try:
        os.makedirs(path, exist_ok=True)
        name = os.path.join(path, f".latentnas-probe-{uuid.uuid4().hex}")
        with open(name, "wb") as f:
            f.write(b"probe")
        os.remove(name)
    except OSError as exc:
        raise storage_error(exc, path) from None


_PROBE = """
import sys, uuid
from pyarrow import fs
location, write = sys.argv[1], sys.argv[2] == "1"
try:
    f, path = fs.FileSystem.from_uri(location)
    info = f.get_file_info(path)
    if info.type == fs.FileType.File:
        raise OSError("it is a file, not a directory")
    if write:
        f.create_dir(path, recursive=True)
        name = path.rstrip("/") + "/.latentnas-probe-" + uuid.uuid4().hex
        with f.open_output_stream(name) as out:
            out.write(b"probe")
        f.delete_file(name)
except BaseException as exc:
    print(" ".join(str(exc).split())[:300] or type(exc).__name__)
    sys.exit(1)
"""


def _probe_uri(location: str, write: bool, what: str) -> None:
    seconds = float(os.environ.get("LATENTNAS_STORAGE_TIMEOUT") or PROBE_SECONDS)
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, location, "1" if write else "0"],
                              capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        raise StorageError(f"{what} {short(location)} did not answer within {seconds:g} s "
                           "(no network, no credentials, or no such bucket?); check the URI "
                           "and the credentials, or raise LATENTNAS_STORAGE_TIMEOUT") from None
    if done.returncode:
        why = (done.stdout.strip().splitlines() or ["the probe failed"])[-1]
        raise StorageError(f"cannot {'write' if write else 'read'} {what} {short(location)}: "
                           f"{why[:200]}; check the URI and the credentials")


#: filesystem types (as /proc/self/mounts names them) that several machines mount as one:
#: network and cluster filesystems, and FUSE mounts of buckets
SHARED_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "glusterfs", "ceph", "beegfs",
    "gpfs", "wekafs", "panfs", "orangefs", "ocfs2", "gfs2", "fuse.glusterfs",
    "fuse.ceph-fuse", "fuse.gcsfuse", "fuse.s3fs", "fuse.mountpoint-s3", "fuse.goofys",
    "fuse.juicefs", "fuse.rclone", "fuse.sshfs", "fuse.blobfuse2", "fuse.weka"})
#: set to 1 when a local path is on a shared filesystem latentnas does not recognise
SHARED_VAR = "LATENTNAS_SHARED_DIRECTORY"


def mount_of(path: str, mounts: str = "/proc/self/mounts") -> tuple[str, str] | None:
    """The mount point and filesystem type that hold ``path`` (its nearest existing
    folder), from the kernel's mount table; None where there is none (not Linux)."""
    path = os.path.realpath(path)
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            table = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return None
    best = None
    for point, kind in table:
        point = point.replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, kind)
    return best


def node_local(location: str) -> str | None:
    """Why ``location`` lives on one machine's own disk (``"ext4 at /"``), or None when it
    is a URI, a shared filesystem (:data:`SHARED_FILESYSTEMS`) or declared shared with
    ``LATENTNAS_SHARED_DIRECTORY=1``."""
    if location.lower().startswith("file://"):
        location = location[len("file://"):]
    if is_uri(location) or os.environ.get(SHARED_VAR) == "1":
        return None
    found = mount_of(os.path.abspath(location))
    if found is None:
        return "a filesystem this system does not name"
    point, kind = found
    return None if kind in SHARED_FILESYSTEMS else f"{kind} at {point}"


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


#: stores where one upload is atomic: an object appears whole when its upload completes,
#: or not at all, so a file is uploaded in place (a temporary object and a "move", which
#: is a copy and a delete there, cost three requests and folder markers for nothing)
OBJECT_STORES = ("S3FileSystem", "GcsFileSystem")


def write_atomic(fs: pafs.FileSystem, path: str, write: Callable[[Any], None]) -> None:
    """Calls ``write(stream)`` on a temporary file next to ``path`` in ``fs``, then moves it
    into place; a failure (an interruption too) leaves ``path`` as it was and removes the
    temporary file. On an object store the bytes are made in memory first and uploaded to
    ``path`` in one request. Every file the platform writes goes through here."""
    if type(fs).__name__ in OBJECT_STORES:
        buffer = pa.BufferOutputStream()
        write(buffer)
        data = buffer.getvalue()
        try:
            with fs.open_output_stream(path) as out:
                out.write(data)
        except OSError as exc:
            raise storage_error(exc, path) from None
        return
    directory = path.rsplit("/", 1)[0]
    fs.create_dir(directory, recursive=True)
    tmp = f"{directory}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
    try:
        with fs.open_output_stream(tmp) as out:
            write(out)
        fs.move(tmp, path)
    except BaseException as exc:
        try:
            fs.delete_file(tmp)
        except (FileNotFoundError, OSError):
            pass
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(exc, path) from None
        raise


def write_file(location: str, write: Callable[[Any], None]) -> None:
    """:func:`write_atomic` for a local path or a URI. A local symbolic link is written
    through (its target is replaced, the link stays); a folder, a device or a pipe standing
    at the path is refused rather than replaced."""
    fs, path = filesystem(_file_target(location, "output"))
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
