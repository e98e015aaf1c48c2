"""The sample-efficiency benchmark: a :class:`~latentnas.plan.SearchPlan` run in a local
process pool, no Ray.

``latentnas bench search`` runs every (searcher, encoding) × seed, then tabulates the
incumbent's report metric and its regret at given budgets as mean ± standard error over
seeds, the share of seeds that found the optimum, and CPU seconds per seed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from latentnas.errors import ConfigError
from latentnas.plan import SearchPlan
from latentnas.results.store import claim, write_trial
from latentnas.search import SearchRun, SearchSpec


@dataclass
class SeedResult:
    label: str
    name: str
    searcher: str
    encoding: str
    seed: int
    best_search: np.ndarray     # [budget] best-so-far search metric
    regret: np.ndarray          # [budget]
    cpu_seconds: float
    rows: list[dict]            # the SearchRun rows


_WORKER: dict = {}


def _init_worker(space: str, dataset: str, pool: bool = True) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    if pool:
        # one thread per worker: with a worker per core, BLAS threads of their own only
        # oversubscribe the cores (measured: half the throughput with 2 workers on 2 cores)
        torch.set_num_threads(1)
        threadpool_limits(1)
        os.environ["LATENTNAS_QUIET"] = "1"
    _WORKER.update(space=space, dataset=dataset)


def _run_one(spec: SearchSpec) -> SeedResult:
    from latentnas.benchmarks import resolve

    bench = resolve(_WORKER["space"], _WORKER["dataset"])
    run = SearchRun(spec, bench.domain(spec.encoding, spec.encoder_seed), bench.oracle)
    rows = run.run()
    return SeedResult(spec.label, spec.name, spec.searcher, spec.encoding, spec.seed,
                      np.array([r["best_search"] for r in rows]),
                      np.array([r["regret"] for r in rows]), run.cpu_seconds, rows)


def check_budgets(budgets: Iterable[int], budget: int) -> list[int]:
    """Sorted distinct budgets to tabulate, each in 1..``budget``."""
    budgets = sorted(set(budgets))
    bad = [b for b in budgets if not 1 <= b <= budget]
    if bad:
        raise ConfigError(f"cannot tabulate at {bad[0]} queries: searches stop at "
                          f"--budget {budget}; give budgets from 1 to {budget}")
    if not budgets:
        raise ConfigError("no budgets to tabulate")
    return budgets


def run_benchmark(plan: SearchPlan, workers: int = 2,
                  on_result: Callable[[SeedResult], None] | None = None,
                  out: str | None = None, experiment: str = "bench",
                  overwrite: bool = False,
                  on_start: Callable[[int], None] | None = None) -> list[SeedResult]:
    """Runs every search of ``plan`` in ``workers`` processes (1: in this process). With
    ``out``, each search is also written to the results store there as experiment
    ``experiment`` (its identity recorded and checked, see ``results.store.claim``), and
    searches already stored there are not run again. ``on_start(n)`` is called with the
    number of searches to run once everything is checked and prepared."""
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive number of processes, got {workers!r}")
    bench = plan.benchmark
    bench.oracle                  # missing benchmark data fails before any pretraining
    specs = plan.specs()
    if out:
        stored = claim(out, experiment, plan.identity(), overwrite=overwrite)
        specs = [s for s in specs if (s.name, s.encoding, s.seed) not in stored]
    for enc, model in sorted({(s.encoding, s.encoder_seed or -1) for s in specs}):
        bench.features(enc, None if model < 0 else model)   # pretrain once, before the workers
    results = []
    if on_start:
        on_start(len(specs))

    def done(res: SeedResult) -> None:
        results.append(res)
        if out:
            write_trial(out, res.rows, experiment=experiment, searcher=res.name,
                        encoding=res.encoding, seed=res.seed, space=bench.name,
                        dataset=bench.dataset, meta={"oracle": bench.oracle.info.name})
        if on_result:
            on_result(res)

    if workers == 1:
        _init_worker(bench.name, bench.dataset, pool=False)
        for spec in specs:
            done(_run_one(spec))
        return results
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(bench.name, bench.dataset)) as pool:
        for res in pool.imap_unordered(_run_one, specs):
            done(res)
    return results


def summarise(results: list[SeedResult], budgets: Iterable[int]) -> list[dict]:
    """One dict per searcher label: the results analysis (mean/s.e. of the incumbent's
    report metric and regret per budget, the share of seeds that found the optimum) plus
    CPU s per seed."""
    import pandas as pd

    from latentnas.results.analysis import summary

    budgets = list(budgets)
    frame = pd.DataFrame([{**row, "experiment": "bench", "searcher": r.name,
                           "encoding": r.encoding, "seed": r.seed}
                          for r in results for row in r.rows])
    stats = summary(frame, budgets)
    out = []
    for (name, encoding), group in stats.groupby(["searcher", "encoding"], sort=False):
        seeds = [r for r in results if r.name == name and r.encoding == encoding]
        row = {"searcher": f"{name}[{encoding}]", "seeds": len(seeds),
               "cpu_s": float(np.mean([r.cpu_seconds for r in seeds]))}
        for _, at in group.iterrows():
            b = at["budget"]
            row.update({f"best@{b}": at["best_report"], f"best_se@{b}": at["best_report_se"],
                        f"regret@{b}": at["regret"], f"regret_se@{b}": at["regret_se"],
                        f"found@{b}": at["found"], f"found_search@{b}": at["found_search"]})
        out.append(row)
    return out
