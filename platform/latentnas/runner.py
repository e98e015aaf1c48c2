"""One runner for a plan of searches, with two backends.

Whatever schedules the searches — a local process pool (:func:`run_local`: ``bench
search``, ``reproduce``, ``encoders compare``, tests) or Ray Tune
(``latentnas.experiment``: ``run``, ``demo``, clusters) — the same steps happen here, in
this order (:func:`prepare`):

1. **check** — the benchmark's data is present and, when the experiment is stored
   already, it was stored for this plan (refused in one line before anything is trained);
2. **preload** — the feature table of every ``(encoding, model)`` the plan searches,
   pretraining missing models once, before any worker starts (``latentnas.models``);
3. **claim** — the experiment's identity (the plan) and provenance (code version, the
   digest of every feature table, every searcher's options with presets and defaults
   expanded) are recorded in the store; a stored experiment of another version is refused
   unless ``mix_versions`` (``latentnas.results.store.claim``);
4. **skip** — searches already stored are not run again;

and every finished search is written by :func:`store_search` with the same metadata,
whichever backend ran it: its code version, model, features digest and resolved options.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from latentnas import models, presets
from latentnas.benchmarks import resolve
from latentnas.errors import ConfigError, short
from latentnas.models import Features
from latentnas.plan import SearchPlan
from latentnas.provenance import code_version, run_record
from latentnas.results.store import check_plan, claim, record_run, write_trial, writer_lock
from latentnas.storage import probe
from latentnas.search import SearchRun, SearchSpec
from searchers import get_searcher, options_of


def model_key(encoding: str, seed: int | None) -> str:
    """``encoding`` or ``encoding#seed``: how a model is named in provenance records."""
    return encoding if seed is None else f"{encoding}#{seed}"


def resolved_options(plan: SearchPlan) -> dict[str, dict[str, Any]]:
    """Every searcher's options as it runs them on the plan's space: its defaults, then
    its preset for the space, then the options written (``searcher label -> options``)."""
    out = {}
    for spec in plan.searchers:
        defaults = options_of(get_searcher(spec.name))
        out[spec.label] = {**defaults, **presets.expand(spec.name, spec.opts, plan.space)}
    return out


@dataclass
class Prepared:
    """A plan ready to run: what is stored already, the feature tables, the provenance."""

    plan: SearchPlan
    root: str | None                 # results store (None: searches are not stored)
    experiment: str
    specs: list[SearchSpec]          # the whole plan
    todo: list[SearchSpec]           # the searches not stored yet
    features: dict[tuple[str, int | None], Features]
    provenance: dict                 # the experiment's, as recorded with it

    @property
    def stored(self) -> int:
        return len(self.specs) - len(self.todo)

    def store_info(self) -> dict:
        """What :func:`store_search` needs, small and picklable (sent to Ray trials)."""
        bench = self.plan.benchmark
        return {"root": self.root, "experiment": self.experiment, "space": bench.name,
                "dataset": bench.dataset, "oracle": bench.oracle.info.name,
                "code": self.provenance["code"], "options": self.provenance["options"],
                "models": {model_key(e, s): f.describe()
                           for (e, s), f in self.features.items()}}

    def arrays(self) -> dict[tuple[str, int | None], np.ndarray | None]:
        return {k: f.array for k, f in self.features.items()}


def experiment_provenance(plan: SearchPlan, features: dict) -> dict:
    """What an experiment's results depend on besides its plan (see the module docstring)."""
    return {"code": code_version(), "options": resolved_options(plan),
            "features": {model_key(e, s): f.digest for (e, s), f in sorted(
                features.items(), key=lambda kv: model_key(*kv[0]))}}


def prepare(plan: SearchPlan, root: str | None, experiment: str, *, overwrite: bool = False,
            resume: bool = False, mix_versions: bool = False) -> Prepared:
    """Steps 1-4 of the module docstring; ``root=None`` runs every search unstored."""
    bench = plan.benchmark
    bench.oracle                  # missing benchmark data fails before any pretraining
    if root is not None:
        probe(root, what="results store")
    if root is not None and not overwrite:
        check_plan(root, experiment, plan.identity(), resume=resume)
    features = {pair: models.features(bench, *pair) for pair in plan.model_seeds()}
    provenance = experiment_provenance(plan, features)
    specs = plan.specs()
    todo = specs
    if root is not None:
        stored = claim(root, experiment, plan.identity(), provenance, overwrite=overwrite,
                       resume=resume, mix_versions=mix_versions)
        todo = [s for s in specs if (s.name, s.encoding, s.seed) not in stored]
        if todo:
            record_run(root, experiment, run_record())
    return Prepared(plan, root, experiment, specs, todo, features, provenance)


def store_search(info: dict, spec: SearchSpec, rows: list[dict], cpu_seconds: float,
                 searcher_stats: dict | None = None) -> str:
    """Writes one finished search with its provenance (``info``: :meth:`Prepared.store_info`)
    and what its searcher counted (``Searcher.stats``, e.g. a library's re-suggestions);
    the one writer of both backends."""
    model = info["models"].get(model_key(spec.encoding, spec.encoder_seed), {})
    meta = {"budget": spec.budget, "oracle": info["oracle"], "cpu_seconds": cpu_seconds,
            "encoder_seed": spec.encoder_seed, "model": model,
            "options": info["options"].get(spec.name, spec.options),
            "code": info["code"]}
    if searcher_stats:
        meta["searcher_stats"] = dict(searcher_stats)
    return write_trial(info["root"], rows, experiment=info["experiment"], searcher=spec.name,
                       encoding=spec.encoding, seed=spec.seed, space=info["space"],
                       dataset=info["dataset"], meta=meta, code=info["code"]["label"],
                       model=model.get("features"), encoder_seed=spec.encoder_seed)


# -- the local backend ------------------------------------------------------------------
@dataclass
class SearchResult:
    """One finished search of the local backend."""

    spec: SearchSpec
    rows: list[dict]
    cpu_seconds: float
    searcher_stats: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def regret(self) -> np.ndarray:
        return np.array([r["regret"] for r in self.rows])


_WORKER: dict = {}


def _init_worker(space: str, dataset: str, nb101_data, training, arrays: dict,
                 pool: bool = True) -> None:
    if pool:
        # one thread per worker: with a worker per core, BLAS threads of their own only
        # oversubscribe the cores (measured: half the throughput with 2 workers on 2 cores)
        torch.set_num_threads(1)
        threadpool_limits(1)
        os.environ["LATENTNAS_QUIET"] = "1"
    _WORKER.update(bench=resolve(space, dataset, nb101_data=nb101_data, training=training),
                   arrays=arrays)


def _run_one(spec: SearchSpec) -> SearchResult:
    bench = _WORKER["bench"]
    domain = bench.domain(spec.encoding, features=_WORKER["arrays"][(spec.encoding,
                                                                     spec.encoder_seed)])
    run = SearchRun(spec, domain, bench.oracle)
    return SearchResult(spec, run.run(), run.cpu_seconds, run.searcher.stats())


def run_local(prepared: Prepared, workers: int = 2,
              on_result: Callable[[SearchResult], None] | None = None) -> list[SearchResult]:
    """Runs ``prepared.todo`` in ``workers`` processes (1: in this process), storing each
    search as it finishes; returns them in the order they finished."""
    plan, info = prepared.plan, prepared.store_info()
    arrays = prepared.arrays()
    args = (plan.benchmark.name, plan.benchmark.dataset, plan.nb101_data, plan.training, arrays)
    results = []

    def done(res: SearchResult) -> None:
        results.append(res)
        if prepared.root is not None:
            store_search(info, res.spec, res.rows, res.cpu_seconds, res.searcher_stats)
        if on_result:
            on_result(res)

    if workers == 1 or len(prepared.todo) <= 1:
        _init_worker(*args, pool=False)
        for spec in prepared.todo:
            done(_run_one(spec))
        return results
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=args) as pool:
        for res in pool.imap_unordered(_run_one, prepared.todo):
            done(res)
    return results


@dataclass
class LocalRun:
    """What :func:`run_plan` did."""

    prepared: Prepared
    results: list[SearchResult] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return len(self.results)


#: local processes a plan may ask for (each holds a copy of the oracle and the features)
MAX_WORKERS = 256


def run_plan(plan: SearchPlan, root: str | None = None, experiment: str = "bench", *,
             workers: int = 2, overwrite: bool = False, mix_versions: bool = False,
             on_start: Callable[[int], None] | None = None,
             on_result: Callable[[SearchResult], None] | None = None) -> LocalRun:
    """:func:`prepare` then :func:`run_local`; ``on_start(n)`` is called with the number of
    searches to run once everything is checked and every model is trained (``workers`` is
    checked first, before any model is)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= \
            MAX_WORKERS:
        raise ConfigError(f"workers must be a number of processes from 1 to {MAX_WORKERS}, "
                          f"got {short(workers)}")
    with writer_lock(root, experiment):
        prepared = prepare(plan, root, experiment, overwrite=overwrite,
                           mix_versions=mix_versions)
        if on_start:
            on_start(len(prepared.todo))
        return LocalRun(prepared, run_local(prepared, workers, on_result))


def traces(run: LocalRun) -> tuple[pd.DataFrame, dict[str, float]]:
    """The rows of the searches ``run`` ran as one frame (the columns of the results store
    that the analysis reads), and the mean CPU seconds per search of each
    ``searcher[encoding]``."""
    frame = pd.DataFrame([{**row, "experiment": run.prepared.experiment,
                           "searcher": r.spec.name, "encoding": r.spec.encoding,
                           "seed": r.spec.seed} for r in run.results for row in r.rows])
    cpu: dict[str, list[float]] = {}
    for r in run.results:
        cpu.setdefault(r.label, []).append(r.cpu_seconds)
    return frame, {k: float(np.mean(v)) for k, v in cpu.items()}
