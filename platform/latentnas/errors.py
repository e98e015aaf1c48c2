"""One exception hierarchy for the platform.

Every message says what was wrong, with the offending value, and what to do about it.
The CLI prints ``str(error)`` as one line, so messages stay on one line.
"""

from __future__ import annotations

import errno
import re
from typing import Any


class LatentNASError(Exception):
    """Root of every error the platform raises on purpose."""


class InvalidCellError(LatentNASError, ValueError):
    """A cell breaks its space's rules (cycle, unknown op, too many edges, ...)."""


class CellParseError(LatentNASError, ValueError):
    """A textual cell (arch string, tuple, JSON) could not be read."""


class UnknownNameError(LatentNASError, KeyError):
    """A space, dataset, oracle or searcher name that is not registered."""

    def __init__(self, kind: str, name: object, choices: list[str] | tuple[str, ...]):
        self.kind, self.name, self.choices = kind, name, list(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}")

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class MissingDataError(LatentNASError, FileNotFoundError):
    """Benchmark data that is not on this machine (and is never downloaded at run time)."""


class CorruptDataError(LatentNASError, ValueError):
    """A data file that exists but cannot be read: truncated, bad checksum, wrong format."""


class CheckpointError(LatentNASError, ValueError):
    """A checkpoint that is corrupt, truncated, or made for another space or model."""


class ConfigError(LatentNASError, ValueError):
    """A malformed experiment file or an inconsistent set of options."""


class StorageError(LatentNASError, OSError):
    """A place to read or write that the environment refuses: permissions, a read-only or
    full disk, a bucket that does not answer, a malformed URI."""

    def __str__(self) -> str:   # OSError would prefix "[Errno n]" and append the path
        return str(self.args[0]) if self.args else ""


class BusyError(LatentNASError):
    """Stored work another latentnas process is writing right now."""


class NotInBenchmarkError(LatentNASError, KeyError):
    """A valid cell that the oracle's table has no entry for."""

    def __str__(self) -> str:
        return str(self.args[0])


class InterruptedRunError(LatentNASError):
    """A run stopped before every search finished (Ctrl-C, SIGTERM); nothing partial was
    stored as finished, and ``--resume`` continues it."""

    def __init__(self, message: str, finished: int = 0, total: int = 0):
        super().__init__(message)
        self.finished, self.total = finished, total


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value cut to ``limit`` characters: errors name the offending input
    without echoing a huge one back, and without rendering it whole first (a value of a
    billion items or digits costs no more than a small one)."""
    import reprlib

    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {len(str(value)) if value.bit_length() < 10_000 else 'over 3,000'} digits"
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return repr(value[:limit]) + f"… ({len(value):,} characters)"
    bounded = reprlib.Repr()
    bounded.maxstring = bounded.maxother = bounded.maxlong = limit
    bounded.maxlist = bounded.maxtuple = bounded.maxdict = bounded.maxset = 8
    text = bounded.repr(value)
    text = text if len(text) <= limit else text[:limit] + "…"
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 8:
        text += f" ({len(value):,} items)"
    return text


#: what to do about an ``OSError``, by errno
_FIXES = {
    errno.EACCES: "permission denied: choose a location you can write, or change its "
                  "permissions",
    errno.EPERM: "operation not permitted there: choose a location you can write",
    errno.EROFS: "the file system is read-only: choose a writable location",
    errno.ENOSPC: "no space left on the device: free space or choose another location",
    errno.EDQUOT: "disk quota exceeded: free space or choose another location",
    errno.EFBIG: "file too large for this file system or process limit: free space, raise "
                 "the limit or choose another location",
    errno.ENOENT: "it does not exist (or a folder above it is missing): check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder where a file is expected: give a file",
    errno.EEXIST: "something else already stands there: choose another path",
    errno.ENAMETOOLONG: "the name is too long for the file system: choose a shorter path",
    errno.ELOOP: "too many symbolic links: check the path",
}


def storage_error(exc: OSError, path: str | None = None) -> StorageError:
    """An ``OSError`` (from Python or pyarrow) as one line naming the path and the fix."""
    if isinstance(exc, StorageError):
        return exc
    where = path or exc.filename
    code = exc.errno
    if code is None:   # pyarrow puts the errno in its message: "[errno 13] Permission denied"
        found = re.search(r"\[errno (\d+)\]", str(exc), re.IGNORECASE)
        code = int(found.group(1)) if found else None
    if where is None:
        found = re.search(r"'([^']+)'", str(exc))
        where = found.group(1) if found else None
    fix = _FIXES.get(code) or " ".join(str(exc).split())[:200]
    place = f"cannot use {short(where, 200)}: " if where else "storage refused: "
    out = StorageError(place + fix)
    out.errno, out.filename = code, where
    return out
