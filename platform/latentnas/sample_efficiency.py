"""The sample-efficiency benchmark: many seeded searches in a local process pool, no Ray.

``latentnas bench search`` runs every (searcher, encoding) × seed, then tabulates the best
search metric and the regret (of the incumbent's report metric) at given budgets as mean ±
standard error over seeds, the fraction of seeds that queried the global optimum (by the
search metric), and CPU seconds per seed.
"""

from __future__ import annotations

import multiprocessing as mp
import re
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import yaml

from latentnas.errors import ConfigError
from latentnas.results.store import write_trial
from latentnas.search import SearchRun, SearchSpec
from searchers import SearcherError, available, get_searcher

#: searchers that move on the neighbour graph and ignore the encoding
DISCRETE = {"random", "re", "ls"}


def parse_searchers(text: str) -> list[tuple[str, dict]]:
    """``"random, re, gp(kernel=matern, local=0.1)"`` -> ``[(name, options), ...]``."""
    out = []
    for item in re.findall(r"[^,()\s]+(?:\([^)]*\))?", text):
        m = re.fullmatch(r"([\w.-]+)(?:\((.*)\))?", item)
        if not m:
            raise ConfigError(f"cannot read searcher {item!r}; write name or name(key=value,...)")
        name, args = m.group(1), m.group(2)
        options = {}
        for pair in filter(None, (a.strip() for a in (args or "").split(","))):
            key, eq, value = pair.partition("=")
            if not eq:
                raise ConfigError(f"option {pair!r} of searcher {name!r} needs key=value")
            options[key.strip()] = yaml.safe_load(value.strip())
        try:
            get_searcher(name)
        except SearcherError as exc:
            raise ConfigError(str(exc)) from None
        out.append((name, options))
    if not out:
        raise ConfigError(f"no searchers given; available: {', '.join(available())}")
    return out


def plan(searchers: list[tuple[str, dict]], encodings: Iterable[str], seeds: int, budget: int,
         first_seed: int = 0) -> list[SearchSpec]:
    """Every compatible (searcher, encoding) × seed. Discrete searchers run once, encoding
    ``none``; ``supervised`` only pairs with ``bo``."""
    specs = []
    for name, options in searchers:
        encs = ["none"] if name in DISCRETE else [
            e for e in encodings if e != "supervised" or name == "bo"]
        for enc in encs:
            specs.extend(SearchSpec(name, enc, s, budget, options)
                         for s in range(first_seed, first_seed + seeds))
    return specs


@dataclass
class SeedResult:
    label: str
    name: str
    searcher: str
    encoding: str
    seed: int
    best_search: np.ndarray     # [budget] best-so-far search metric
    regret: np.ndarray          # [budget]
    found_step: int | None      # query at which the search optimum was found
    cpu_seconds: float
    rows: list[dict]            # the SearchRun rows


_WORKER: dict = {}


def _init_worker(space: str, dataset: str | None) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER.update(space=space, dataset=dataset)


def _run_one(spec: SearchSpec) -> SeedResult:
    from latentnas.encodings import make_domain
    from latentnas.oracles import get_oracle

    oracle = get_oracle(_WORKER["space"], _WORKER["dataset"])
    domain = make_domain(oracle.space.name, spec.encoding,
                         ids=getattr(oracle, "available", None))
    run = SearchRun(spec, domain, oracle)
    rows = run.run()
    best = np.array([r["best_search"] for r in rows])
    optimum = oracle.optimum_search
    found = np.flatnonzero(np.isclose(best, optimum, rtol=0, atol=1e-12))
    return SeedResult(spec.label, spec.name, spec.searcher, spec.encoding, spec.seed, best,
                      np.array([r["regret"] for r in rows]),
                      int(found[0]) + 1 if len(found) else None, run.cpu_seconds, rows)


def run_benchmark(space: str, dataset: str | None, specs: list[SearchSpec], workers: int = 2,
                  on_result: Callable[[SeedResult], None] | None = None,
                  out: str | None = None, experiment: str = "bench") -> list[SeedResult]:
    """Runs ``specs`` in ``workers`` processes (1: in this process). With ``out``, every
    search is also written to the results store there (experiment ``experiment``)."""
    from latentnas.encodings import encoding_features
    from latentnas.oracles import get_oracle

    oracle = get_oracle(space, dataset)
    for enc in sorted({s.encoding for s in specs}):
        encoding_features(oracle.space.name, enc)   # pretrain/cache once, before the workers
    results = []

    def done(res: SeedResult) -> None:
        results.append(res)
        if out:
            write_trial(out, res.rows, experiment=experiment, searcher=res.name,
                        encoding=res.encoding, seed=res.seed, space=oracle.space.name,
                        dataset=oracle.info.dataset, meta={"oracle": oracle.info.name})
        if on_result:
            on_result(res)

    if workers <= 1:
        _init_worker(space, dataset)
        for spec in specs:
            done(_run_one(spec))
        return results
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(space, dataset)) as pool:
        for res in pool.imap_unordered(_run_one, specs):
            done(res)
    return results


def summarise(results: list[SeedResult], budgets: Iterable[int]) -> list[dict]:
    """One dict per searcher label: the results analysis (mean/s.e. of the incumbent's
    report metric and regret per budget) plus the share of seeds that queried the search
    optimum by each budget and CPU s per seed."""
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
                        f"found@{b}": float(np.mean([r.found_step is not None and r.found_step <= b
                                                     for r in seeds]))})
        out.append(row)
    return out
