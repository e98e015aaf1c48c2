"""The field's general-purpose optimizers as searchers: Optuna (TPE, GP), SMAC and HEBO.

These are adapters, not re-implementations: each drives the real library through its
ask/tell interface over the domain's categorical choices (:class:`searchers.base.Choices`:
NB201's six edge ops, NAS-Bench-Graph's link pattern and four layer ops, NB101's 21
matrix bits and five ops), with the library's own defaults, seeded from the searcher's
generator. They are an optional extra: ``pip install 'latentnas[peers]'`` (HEBO needs one
more step, see :class:`HEBOSearch`); a missing library is one line naming the extra.

What a library suggests and what the budget counts:

* a suggestion naming a cell not yet proposed is proposed (one query of the budget);
* a *re-suggestion* (a cell already proposed, in any of its equivalent forms) is answered
  with the value told for that cell and costs nothing;
* an *invalid* suggestion (choices that make no cell of the domain: an NB101 matrix whose
  input cannot reach its output, an all-skip NAS-Bench-Graph cell) is answered with the
  worst value told so far (held back until a first value exists) and costs nothing;
* after ``max_rejects`` such answers in a row a random unvisited cell is proposed instead
  and told to the library as a point of its own (a *fallback*), so a search never stalls.

:meth:`LibrarySearcher.stats` counts each, and the platform stores the counts with the
search. A saved state resumes exactly: it holds the library's seed and the log of
proposals, and loading replays them through a fresh library with the told values (the
libraries are deterministic under a seed; the replay costs what the first pass cost).
"""

from __future__ import annotations

import contextlib
import importlib
import random
import shutil
import tempfile
import warnings
import weakref
from abc import abstractmethod
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge

from searchers.base import Domain, Searcher, SearcherError
from searchers.registry import register

#: the extra that installs the libraries, and HEBO's extra step
EXTRA = "pip install 'latentnas[peers]'"
HEBO_STEP = "pip install --no-deps 'hebo==0.3.6'"


def require(module: str, searcher: str, install: str = EXTRA):
    """Imports ``module`` or raises a :class:`SearcherError` naming the install step."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SearcherError(f"searcher {searcher!r} needs the {module.split('.')[0]} library "
                            f"({exc.name} is not installed): {install}") from None


@contextlib.contextmanager
def seeded_globals(seed: int):
    """Seeds Python's, NumPy's and torch's global generators for a library call that draws
    from them (HEBO), and restores them after, so nothing else in the process changes."""
    import torch

    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class LibrarySearcher(Searcher):
    """Shared ask/tell bridge between a library's suggestions and a finite domain (see the
    module docstring). Subclasses implement :meth:`_start`, :meth:`_ask`, :meth:`_tell`
    and :meth:`_tell_new`."""

    requires = ("choices",)

    def __init__(self, domain: Domain, rng: np.random.Generator,
                 max_rejects: Annotated[int, Ge(1)] = 100):
        super().__init__(domain, rng)
        self.columns = domain.choices.columns
        self.max_rejects = max_rejects
        self.seed = int(rng.integers(2**31 - 1))
        self._reset()

    def _reset(self) -> None:
        self.log: list[tuple[int, str]] = []      # (position, "library" | "fallback")
        self.counts = {"suggestions": 0, "repeats": 0, "invalid": 0, "fallbacks": 0}
        self._values: dict[int, float] = {}
        self._proposed: set[int] = set()
        self._open: dict[int, Any] = {}            # proposed position -> its library handle
        self._waiting: dict[int, list] = {}        # re-suggestions of a cell not told yet
        self._deferred: list = []                  # invalid suggestions before any value
        self._calls = 0
        self._start(self.seed)

    # -- the library side (subclasses) ------------------------------------------------
    @abstractmethod
    def _start(self, seed: int) -> None:
        """Creates the library's optimizer, seeded with ``seed``."""

    @abstractmethod
    def _ask(self) -> tuple[Any, tuple[int, ...]]:
        """One suggestion: ``(handle, codes)``, a category index per column."""

    @abstractmethod
    def _tell(self, handle: Any, value: float) -> None:
        """Tells the library the value (higher is better) of its suggestion ``handle``."""

    @abstractmethod
    def _tell_new(self, codes: tuple[int, ...], value: float) -> None:
        """Tells the library the value of a point it did not suggest."""

    def labels(self, codes) -> dict[str, str]:
        return {name: cats[int(c)] for (name, cats), c in zip(self.columns, codes)}

    def codes(self, labels: dict) -> tuple[int, ...]:
        return tuple(cats.index(labels[name]) for name, cats in self.columns)

    def call_seed(self) -> int:
        """A seed per library call, from the search's seed and the call's number."""
        self._calls += 1
        return (self.seed * 1_000_003 + self._calls) % 2**31

    # -- the bridge -------------------------------------------------------------------
    def _next(self, replay: tuple[int, str] | None = None) -> tuple[int, str]:
        for _ in range(self.max_rejects):
            handle, codes = self._ask()
            self.counts["suggestions"] += 1
            cell = self.domain.choices.decode(tuple(int(c) for c in codes))
            pos = None if cell is None else self.domain.position_of(cell)
            if pos is None:
                self.counts["invalid"] += 1
                if self._values:
                    self._tell(handle, min(self._values.values()))
                else:
                    self._deferred.append(handle)
            elif pos in self._proposed:
                self.counts["repeats"] += 1
                if pos in self._values:
                    self._tell(handle, self._values[pos])
                else:
                    self._waiting.setdefault(pos, []).append(handle)
            else:
                self._open[pos] = handle
                return pos, "library"
        pos = replay[0] if replay is not None else int(self.random_unvisited(1)[0])
        self.counts["fallbacks"] += 1
        self._open[pos] = None
        return pos, "fallback"

    def _propose(self, n: int) -> list[int]:
        if self.pending:
            return []                       # one cell at a time, told before the next
        pos, how = self._next()
        self._proposed.add(pos)
        self.log.append((pos, how))
        return [pos]

    def _observe(self, pos: np.ndarray, values: np.ndarray) -> None:
        for p, v in zip(pos, values):
            self._answer(int(p), float(v))

    def _answer(self, pos: int, value: float) -> None:
        self._values[pos] = value
        handle = self._open.pop(pos)
        if handle is None:
            self._tell_new(self.domain.choices.encode(int(self.domain.ids[pos])), value)
        else:
            self._tell(handle, value)
        for h in self._waiting.pop(pos, []):
            self._tell(h, value)
        if self._deferred:
            worst = min(self._values.values())
            for h in self._deferred:
                self._tell(h, worst)
            self._deferred = []

    def stats(self) -> dict:
        return dict(self.counts)

    # -- state: the seed and the proposals, replayed on load --------------------------
    def _state(self) -> dict:
        return {"seed": self.seed, "log": [list(e) for e in self.log]}

    def _load_state(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self._reset()
        told = dict(zip(self.history_pos, self.history_y))
        for pos, how in state["log"]:
            got, _ = self._next(replay=(int(pos), how))
            if got != int(pos):
                raise SearcherError(
                    f"searcher {self.name!r} did not replay its saved proposals (cell "
                    f"{int(self.domain.ids[got])} where the state has "
                    f"{int(self.domain.ids[int(pos)])}); the library is not deterministic "
                    "under its seed here, so this state cannot be resumed exactly")
            self._proposed.add(got)
            self.log.append((got, how))
            if got in told:
                self._answer(got, told[got])


# -- Optuna -----------------------------------------------------------------------------
class _OptunaSearch(LibrarySearcher):
    def _sampler(self, optuna, seed: int):
        raise NotImplementedError

    def _start(self, seed: int) -> None:
        optuna = require("optuna", self.name)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.dists = {name: optuna.distributions.CategoricalDistribution(list(cats))
                      for name, cats in self.columns}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(direction="maximize",
                                             sampler=self._sampler(optuna, seed))

    def _ask(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
            trial = self.study.ask(self.dists)
        return trial, self.codes(trial.params)

    def _tell(self, handle, value: float) -> None:
        self.study.tell(handle, value)

    def _tell_new(self, codes, value: float) -> None:
        self.study.add_trial(self._optuna.trial.create_trial(
            params=self.labels(codes), distributions=self.dists, value=value))


@register("optuna-tpe")
class OptunaTPESearch(_OptunaSearch):
    """Optuna's TPE sampler (``TPESampler``, its defaults: 10 random startup trials,
    24 EI candidates) over the space's categorical choices."""

    def _sampler(self, optuna, seed: int):
        return optuna.samplers.TPESampler(seed=seed)


@register("optuna-gp")
class OptunaGPSearch(_OptunaSearch):
    """Optuna's GP sampler (``GPSampler``, its defaults: 10 random startup trials, a
    Matérn-5/2 GP with one-hot categorical inputs, log EI) over the categorical choices.

    ``max_rejects`` is 10 here, not 100: once the GP has found the best region it keeps
    re-suggesting cells already searched in their other equivalent forms (on
    NAS-Bench-Graph proteins, 5,625 choice combinations name 2,021 cells), and every
    re-suggestion is told back, a trial more that each later ask refits. On proteins'
    tuning seeds 0–4 (150 queries, one thread) 10 instead of 100 cut seed 3 from 315
    re-suggestions and 84 CPU s to 120 and 22 s, the others within 20 %, with the same
    regret at 50, 100 and 150. Not telling re-suggestions (failed trials, outside the GP)
    was worse: 630–780 re-suggestions and 60–76 fallbacks a search, as the GP, never
    told, suggests the same forms again."""

    def __init__(self, domain: Domain, rng: np.random.Generator,
                 max_rejects: Annotated[int, Ge(1)] = 10):
        super().__init__(domain, rng, max_rejects)

    def _sampler(self, optuna, seed: int):
        return optuna.samplers.GPSampler(seed=seed)


# -- SMAC -------------------------------------------------------------------------------
@register("smac")
class SMACSearch(LibrarySearcher):
    """SMAC3's hyperparameter-optimization facade (a random forest surrogate, log EI,
    local and random search over configurations, one random configuration in five,
    a Sobol initial design) over the categorical choices, as a deterministic problem.

    ``trials`` is what SMAC's scenario calls ``n_trials``: SMAC sizes its initial design
    from it (at most a quarter of it), so it should be the search's budget (150 for the
    standings). Its run files go to a temporary folder removed with the searcher.
    """

    def __init__(self, domain: Domain, rng: np.random.Generator,
                 max_rejects: Annotated[int, Ge(1)] = 100, trials: Annotated[int, Ge(1)] = 150):
        self.trials = trials
        super().__init__(domain, rng, max_rejects=max_rejects)

    def _start(self, seed: int) -> None:
        smac = require("smac", self.name)
        cs_mod = require("ConfigSpace", self.name)
        from smac.runhistory.dataclasses import TrialInfo, TrialValue

        self._TrialInfo, self._TrialValue = TrialInfo, TrialValue
        self.space = cs_mod.ConfigurationSpace(seed=seed)
        self.space.add([cs_mod.Categorical(name, list(cats)) for name, cats in self.columns])
        self._cs = cs_mod
        folder = tempfile.mkdtemp(prefix="latentnas-smac-")
        weakref.finalize(self, shutil.rmtree, folder, True)
        scenario = smac.Scenario(self.space, deterministic=True, n_trials=self.trials,
                                 seed=seed, output_directory=folder)
        facade = smac.HyperparameterOptimizationFacade
        maximizer = facade.get_acquisition_maximizer(scenario)
        _start_points_in_a_fixed_order(maximizer._local_search)
        self.smac = facade(scenario, lambda config, seed=0: 0.0, overwrite=True,
                           logging_level=40, acquisition_maximizer=maximizer)

    def _ask(self):
        with _quiet_forest():
            info = self.smac.ask()
        return info, self.codes(dict(info.config))

    def _tell(self, handle, value: float) -> None:
        with _quiet_forest():
            self.smac.tell(handle, self._TrialValue(cost=-value), save=False)

    def _tell_new(self, codes, value: float) -> None:
        config = self._cs.Configuration(self.space, values=self.labels(codes))
        with _quiet_forest():
            self.smac.tell(self._TrialInfo(config=config, seed=self.seed),
                           self._TrialValue(cost=-value), save=False)


def _start_points_in_a_fixed_order(local_search) -> None:
    """Make SMAC's local search start from its points in an order that does not depend on
    the process's string-hash seed.

    SMAC 2 (2.4.1) gathers the local search's start points (the told configurations
    best by predicted cost, then the extra ones) into a ``set`` and returns
    ``list(that set)``; ConfigSpace hashes a configuration by its ``repr``, so the order
    follows ``PYTHONHASHSEED``, and so do the random-number draws of the walks that
    follow: the same seed gave a different trace in another process from the first
    model-based suggestion on (NAS-Bench-Graph cora, seed 1000, query 38 of 50). Here the
    same points come back sorted by their configuration vectors. This is the facade's
    own maximizer with that one change; traces differ from those SMAC gave before it.
    """
    unordered = local_search._get_init_points_from_previous_configs

    def ordered(*args, **kwargs):
        return sorted(unordered(*args, **kwargs), key=lambda c: tuple(c.get_array()))

    local_search._get_init_points_from_previous_configs = ordered


@contextlib.contextmanager
def _quiet_forest():
    """SMAC's forest asks joblib for its workers on every fit; in a daemonic worker (the
    process pool) joblib runs them in-process, as it would anyway with SMAC's one job, and
    warns about it each time: the warning says nothing here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Loky-backed parallel loops")
        yield


# -- HEBO -------------------------------------------------------------------------------
@register("hebo")
class HEBOSearch(LibrarySearcher):
    """HEBO (Huawei Noah's Ark) with its defaults: a GP with input warping, the MACE
    multi-objective acquisition optimized by NSGA-II, a Sobol initial design of
    1 + (number of choices) points.

    HEBO's newest release on PyPI (0.3.6) declares ``numpy<1.25``, which no install with
    this project's numpy (>= 1.26) can satisfy, and pip would then take 0.3.2, which does
    not import with pymoo 0.6. HEBO 0.3.6 itself runs on numpy 2 (measured here), so it
    is installed without its declared dependencies: ``pip install 'latentnas[peers]'``
    (which brings pymoo and disjoint-set), then ``pip install --no-deps 'hebo==0.3.6'``.
    HEBO draws from the global NumPy and torch generators: each call here seeds them
    from the search's seed and restores them after. Its acquisition optimizer (pymoo's
    NSGA-II) draws from them too at pymoo 0.6.0, HEBO's own pin, which the extra keeps;
    from pymoo 0.6.1 on it draws from a fresh unseeded generator, and HEBO's suggestions
    would differ from run to run.
    """

    def _start(self, seed: int) -> None:
        install = f"{EXTRA} && {HEBO_STEP}"
        require("hebo", self.name, install)
        design = require("hebo.design_space.design_space", self.name, install)
        optimizers = require("hebo.optimizers.hebo", self.name, install)
        self.space = design.DesignSpace().parse(
            [{"name": name, "type": "cat", "categories": list(cats)}
             for name, cats in self.columns])
        with seeded_globals(self.call_seed()):
            self.opt = optimizers.HEBO(self.space, scramble_seed=seed)

    def _ask(self):
        with seeded_globals(self.call_seed()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = self.opt.suggest(n_suggestions=1)
        return rec, self.codes(rec.iloc[0].to_dict())

    def _tell(self, handle, value: float) -> None:
        with seeded_globals(self.call_seed()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.opt.observe(handle, np.array([[-value]]))

    def _tell_new(self, codes, value: float) -> None:
        import pandas as pd

        self._tell(pd.DataFrame([self.labels(codes)]), value)
