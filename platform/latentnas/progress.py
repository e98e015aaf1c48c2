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


class TrialLines:
    """Progress of an experiment as plain lines, for output that is not a terminal (job
    logs, ``| tee``, nohup): counts, rate, elapsed time, an ETA from the searches finished
    in this run, and the best search metric per searcher, at most one line every
    ``every`` seconds (``LATENTNAS_PROGRESS_SECONDS``, default 30) and one when the last
    search finishes. ``clock`` and ``write`` are for tests."""

    def __init__(self, total: int, done: int = 0, every: float | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 write: Callable[[str], None] | None = None):
        self.total, self.first = total, done
        self.every = float(os.environ.get("LATENTNAS_PROGRESS_SECONDS", 30)) \
            if every is None else every
        self.clock, self.t0 = clock, clock()
        self.last = -float("inf")
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))

    def __call__(self, state: dict) -> None:
        now = self.clock()
        finished = state["done"] >= self.total
        if now - self.last < self.every and not finished:
            return
        self.last = now
        self.write(self.line(state, now - self.t0))

    def line(self, state: dict, elapsed: float) -> str:
        done, total = state["done"], self.total
        here = done - self.first
        if done >= total:
            eta = "done"
        elif here > 0:
            eta = f"ETA {_duration(elapsed / here * (total - done))}"
        else:
            eta = "ETA -"
        best = ", ".join(f"{k} {v:.4g}" for k, v in sorted(state.get("best", {}).items()))
        return (f"searches {done:,}/{total:,} ({done / max(total, 1):.0%}) | "
                f"{state.get('queries', 0):,} queries, {state.get('qps', 0):,.0f}/s | "
                f"{_duration(elapsed)} elapsed, {eta}" + (f" | best: {best}" if best else ""))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
