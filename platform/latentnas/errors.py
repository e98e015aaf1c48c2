"""One exception hierarchy for the platform.

Every message says what was wrong, with the offending value, and what to do about it.
The CLI prints ``str(error)`` as one line, so messages stay on one line.
"""

from __future__ import annotations

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
    without echoing a huge one back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"
