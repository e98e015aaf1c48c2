"""One search, in process: a searcher, an oracle, a budget, and the trace of its queries.

:class:`SearchRun` is the unit every layer above uses: the sample-efficiency benchmark runs
many of them in a process pool, a Ray Tune trial runs one. It steps ask → query → tell,
records one row per query, and checkpoints (searcher state + rows) so a run resumes
exactly where it stopped.

A searcher's ask and tell run with one BLAS/PyTorch thread: a sum over several threads
is added in another order, and a GP's argmax can tip on the last bit, so a trace would
depend on the CPUs a trial was given. With one thread it does not (measured on the
simulated cluster: 15 of 15 traces equal to an in-process run; 10 of 15 without).
The oracle's query (real training included) keeps every thread.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from latentnas.oracles.base import Oracle
from searchers import Domain, Searcher, create


@contextmanager
def one_thread(controller=None):
    """BLAS and PyTorch on one thread inside the block; the caller's settings after.

    ``controller``: a ``threadpoolctl.ThreadpoolController`` made once the libraries are
    loaded (making one scans them: ~2 ms, too slow for every step of a fast searcher).
    """
    import torch
    from threadpoolctl import ThreadpoolController

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with (controller or ThreadpoolController()).limit(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


@dataclass
class SearchSpec:
    """What one search is: strategy, its options, encoding, seed and budget."""

    searcher: str
    encoding: str
    seed: int
    budget: int
    options: dict = field(default_factory=dict)
    #: the pretraining seed of the encoder behind a learned encoding (arch2vec), when a
    #: plan spreads its searches over several pretrained models (None: the default model)
    encoder_seed: int | None = None

    @property
    def name(self) -> str:
        """The searcher with its options, e.g. ``gp:kernel=matern,local=0.1``."""
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.searcher}{':' + opts if opts else ''}"

    @property
    def label(self) -> str:
        return f"{self.name}[{self.encoding}]"


class SearchRun:
    """Runs ``spec`` on ``domain`` against ``oracle``; :attr:`rows` holds the trace.

    Each row: ``step`` (1-based), ``id``, ``cell`` (the space's text form), ``search``, ``report``, ``cost``,
    ``sim_time`` (cumulative cost), ``best_search``, ``best_report`` (report metric of
    the incumbent, the best by the search metric so far), ``regret``
    (``oracle.optimum_report - best_report``) and ``search_regret``
    (``oracle.optimum_search - best_search``: 0 once the cell with the best search metric
    of the benchmark was queried).
    """

    def __init__(self, spec: SearchSpec, domain: Domain, oracle: Oracle):
        from latentnas.presets import expand

        self.spec, self.domain, self.oracle = spec, domain, oracle
        options = expand(spec.searcher, spec.options, oracle.space.name)
        self.searcher: Searcher = create(spec.searcher, domain, np.random.default_rng(spec.seed),
                                         **options)
        from threadpoolctl import ThreadpoolController

        self._threads = ThreadpoolController()      # after the searcher loaded its libraries
        self.rows: list[dict] = []
        self.cpu_seconds = 0.0
        self._optimum = oracle.optimum_report
        self._optimum_search = oracle.optimum_search
        self._exhausted = False

    @property
    def done(self) -> bool:
        return len(self.rows) >= self.spec.budget or self._exhausted

    def step(self) -> list[dict]:
        """One ask → query → tell round; returns the new rows."""
        start = time.process_time()
        with one_thread(self._threads):
            ids = self.searcher.ask(self.spec.budget - len(self.rows))
        if len(ids) == 0:
            self._exhausted = True
            return []
        batch = self.oracle.query_ids(ids)
        with one_thread(self._threads):
            self.searcher.tell(ids, batch.search)
        new = []
        last = self.rows[-1] if self.rows else None
        best_s = last["best_search"] if last else -np.inf
        best_r = last["best_report"] if last else np.nan
        sim = last["sim_time"] if last else 0.0
        for k in range(len(ids)):
            sim += float(batch.cost[k])
            if batch.search[k] > best_s:
                best_s, best_r = float(batch.search[k]), float(batch.report[k])
            new.append({"step": len(self.rows) + len(new) + 1, "id": int(ids[k]),
                        "cell": self._format(int(ids[k])),
                        "search": float(batch.search[k]), "report": float(batch.report[k]),
                        "cost": float(batch.cost[k]), "sim_time": sim, "best_search": best_s,
                        "best_report": best_r, "regret": self._optimum - best_r,
                        "search_regret": self._optimum_search - best_s})
        self.rows.extend(new)
        self.cpu_seconds += time.process_time() - start
        return new

    def _format(self, cell_id: int) -> str:
        space = self.oracle.space
        return space.format(space.cells()[cell_id])

    def run(self) -> list[dict]:
        while not self.done:
            self.step()
        return self.rows

    def state_dict(self) -> dict:
        return {"spec": self.spec.__dict__, "searcher": self.searcher.state_dict(),
                "rows": [dict(r) for r in self.rows], "cpu_seconds": self.cpu_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.searcher.load_state_dict(state["searcher"])
        self.rows = [dict(r) for r in state["rows"]]
        self.cpu_seconds = state["cpu_seconds"]
