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

from rich.markup import escape


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


def stage_line(text: str) -> None:
    """One line of what long first-use work decided (e.g. why a model is retrained), on
    stderr; silenced like :func:`stage`."""
    if not os.environ.get("LATENTNAS_QUIET"):
        print(text, file=sys.stderr, flush=True)


@contextmanager
def search_progress(console, every: float = 60.0):
    """Progress of a batch of searches: ``start(n)`` once everything is checked, ``done(result)``
    after each. A bar on ``console`` when it is a terminal; otherwise (logs, CI, nohup) one line on stderr at the
    start, then at most one every ``every`` seconds and one at the end, so an hours-long
    comparison shows where it is."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.progress import TimeElapsedColumn

    if not console.is_terminal:
        state = {"n": 0, "total": 0, "t0": time.perf_counter(), "last": 0.0}

        def line_start(n: int) -> None:
            state.update(total=n, t0=time.perf_counter(), last=time.perf_counter())
            print(f"searches: {n} to run", file=sys.stderr, flush=True)

        def line_done(r) -> None:
            state["n"] += 1
            now = time.perf_counter()
            if now - state["last"] < every and state["n"] < state["total"]:
                return
            state["last"] = now
            minutes = (now - state["t0"]) / 60
            print(f"searches: {state['n']}/{state['total']} done in {minutes:.1f} min; "
                  f"last {r.label} seed {r.seed}: regret {r.regret[-1]:.3g}",
                  file=sys.stderr, flush=True)

        yield line_start, line_done
        return

    progress = Progress(TextColumn("[bold]searches"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=console)
    task = progress.add_task("search", total=None, last="", start=False)

    def start(n: int) -> None:
        progress.update(task, total=n)
        progress.start_task(task)
        progress.start()

    def done(r) -> None:
        progress.update(task, advance=1, last=f"{escape(r.label)} seed {r.seed}: regret "
                                              f"{r.regret[-1]:.3g}")

    try:
        yield start, done
    finally:
        progress.stop()
