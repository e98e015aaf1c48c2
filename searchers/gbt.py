"""BO with gradient-boosted trees as the surrogate, over any encoding (scikit-learn).

A non-neural accuracy predictor on top of an embedding: trees need no kernel, no
length-scales and no input scaling, and split on whichever coordinates order the cells,
so they are the usual strong baseline among performance predictors. A single boosted
ensemble gives a point prediction only; BO also needs how unsure it is. Here the
surrogate is a bootstrap ensemble of ``members`` boosted regressors
(``HistGradientBoostingRegressor``: ``trees`` rounds of depth-limited trees with
``leaves`` leaves and at least ``min_leaf`` cells per leaf, shrinkage
``learning_rate``, a ``max_features`` share of the inputs drawn per split). Member ``j``
is fitted on a resample with replacement of the cells told so far, so for a candidate
``x``

    μ(x) = 1/J Σ_j f_j(x),    v(x) = 1/J Σ_j (f_j(x) - μ(x))² + ε

and the acquisition is LogEI (``searchers.acquisition``) against the best target so far,
the top ``batch_size`` unvisited candidates proposed per round. Targets are normal
scores of their ranks by default (``target="rank"``), as for ``gp``. ``inputs`` and
``candidates`` (with ``top``, ``radius``) mean what they mean for ``gp``: the encoding's
features, the cell's discrete choices or both; every unvisited cell, or those within
``radius`` edits of the ``top`` best cells told so far. The defaults are ``gp-mixed``'s
(``inputs="both"``, ``candidates="neighbours"``): tuned on NB201, seeds 0–11, 150
queries, arch2vec features, against the other three combinations, where they found the
optimum by 100 queries in the most seeds and scored the fewest candidates. Its held-out
figures against ``gp-mixed`` and ``gp`` are the report ``docs/results/nb201-gbt.md``.

The ensemble is refitted from the told values each round (nothing is carried between
rounds but the random generator, so a saved state resumes exactly). Every random
choice — resamples, ``max_features`` draws — comes from the searcher's generator.
Candidates are scored where the searcher runs (``domain.top_k``, the encoder shards'
scoring, is for ``gp``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Gt, Interval, Le
from threadpoolctl import threadpool_limits

from searchers.acquisition import log_expected_improvement, top_k, transform_targets
from searchers.base import Domain, Searcher
from searchers.gp import surrogate_inputs, surrogate_requires, unvisited_neighbourhood
from searchers.registry import register


@register("gbt")
class GBTSearch(Searcher):
    """BO with a bootstrap ensemble of gradient-boosted trees (see the module docstring)."""

    requires = ("features",)

    query_options = ("init", "batch_size")

    def __init__(self, domain: Domain, rng: np.random.Generator,
                 init: Annotated[int, Ge(1)] = 16, batch_size: Annotated[int, Ge(1)] = 1,
                 members: Annotated[int, Ge(2), Le(100)] = 5, trees: Annotated[int, Ge(1)] = 50,
                 learning_rate: Annotated[float, Gt(0), Le(1)] = 0.1,
                 leaves: Annotated[int, Ge(2), Le(4096)] = 8, min_leaf: Annotated[int, Ge(1)] = 2,
                 max_features: Annotated[float, Interval(gt=0, le=1)] = 1.0,
                 target: Literal["rank", "standardize"] = "rank",
                 inputs: Literal["features", "onehot", "both"] = "both",
                 candidates: Literal["all", "neighbours"] = "neighbours",
                 top: Annotated[int, Ge(1)] = 10, radius: Annotated[int, Ge(1)] = 1):
        self.requires = surrogate_requires(inputs, candidates)   # the parts these read
        super().__init__(domain, rng)
        # imported here so the searcher's thread limits see scikit-learn's OpenMP runtime
        from sklearn.ensemble import HistGradientBoostingRegressor

        self._regressor = HistGradientBoostingRegressor
        self.init, self.batch_size, self.members, self.trees = init, batch_size, members, trees
        self.learning_rate, self.leaves, self.min_leaf = learning_rate, leaves, min_leaf
        self.max_features, self.target, self.inputs = max_features, target, inputs
        self.candidates, self.top, self.radius = candidates, top, radius
        self.x = surrogate_inputs(domain, inputs)

    def _ensemble(self, pos: np.ndarray, y: np.ndarray) -> list:
        n = len(pos)
        models = []
        for _ in range(self.members):
            rows = self.rng.integers(0, n, size=n)
            model = self._regressor(
                max_iter=self.trees, learning_rate=self.learning_rate,
                max_leaf_nodes=self.leaves, min_samples_leaf=self.min_leaf,
                max_features=self.max_features, early_stopping=False,
                random_state=int(self.rng.integers(2**31)))
            models.append(model.fit(self.x[pos[rows]], y[rows]))
        return models

    def mean_var(self, models: list, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ensemble's mean and spread (variance across members) at positions ``cand``."""
        preds = np.stack([m.predict(self.x[cand]) for m in models])
        return preds.mean(0), preds.var(0) + 1e-9

    def _candidates(self, pos: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.candidates == "neighbours":
            starts = pos[np.argsort(-y, kind="stable")[:self.top]]
            near = unvisited_neighbourhood(self.domain, self.taken, starts, self.radius)
            if len(near) >= self.batch_size:
                return near
        return self.unvisited()

    def _propose(self, n: int) -> list[int]:
        started = self.start_round(n, self.init)
        if started is not None:
            return started
        pos = np.asarray(self.history_pos)
        y = transform_targets(np.asarray(self.history_y), self.target)
        cand = self._candidates(pos, y)
        # one OpenMP thread: on a few hundred rows the trees gain nothing from more, and
        # several searches share the cores (threads spinning on a busy core cost seconds)
        with threadpool_limits(limits=1, user_api="openmp"):
            models = self._ensemble(pos, y)
            mean, var = self.mean_var(models, cand)
        scores = log_expected_improvement(mean, var, best=float(y.max()))
        return list(top_k(scores, cand, min(n, self.batch_size, len(cand))))
