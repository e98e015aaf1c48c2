"""Progress of long first-use work (enumerations, pretraining) wherever it happens.

Library code wraps work that can take more than a second in :func:`stage`; the user sees
a progress bar on a terminal, and a start line and an end line with the seconds taken
otherwise (logs, CI), on stderr so piped output stays clean. ``LATENTNAS_QUIET=1``
silences it (worker processes of a pool set it).
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def stage(title: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """``with stage("hashing 423,624 cells", total=64) as advance: ... advance(1)``."""
    if os.environ.get("LATENTNAS_QUIET"):
        yield lambda n=1: None
        return
    start = time.perf_counter()
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        from rich.progress import TimeElapsedColumn

        columns = [TextColumn(f"[bold]{title}"), BarColumn(),
                   *([MofNCompleteColumn()] if total else []), TimeElapsedColumn()]
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(title, total=total)
            yield lambda n=1: bar.advance(task, n)
    else:
        print(f"{title} ...", file=sys.stderr, flush=True)
        yield lambda n=1: None
    print(f"{title}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
