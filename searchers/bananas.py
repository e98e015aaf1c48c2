"""BANANAS (White, Neiswanger & Savani, AAAI 2021): BO with an ensemble of neural
predictors on the path encoding, independent Thompson sampling over mutations.

The published method, on this package's protocol:

* the encoding is the path encoding (one bit per input→output path label;
  ``encoders.discrete.PathEncoding``): ``bananas`` runs under the ``path`` encoding unless
  a plan names another (``bananas@arch2vec`` is then a latent-space variant, not BANANAS);
* ``init`` (10) random cells, then rounds of ``batch_size`` (10) cells;
* the predictor is an ensemble of ``members`` (5) fully connected networks of ``layers``
  (10) ReLU layers of ``units`` (20), each trained from its own initialisation with Adam
  (learning rate 0.01) for ``epochs`` (200) on minibatches of 32, the paper's settings;
  the loss is the mean absolute error on standardised values (the paper's code fitted
  the mean absolute percentage error of validation losses, which has no counterpart for
  a value to maximise that may be negative);
* the acquisition is independent Thompson sampling: each candidate's value is drawn from
  a normal with the ensemble's mean and standard deviation there, and the ``batch_size``
  highest draws are evaluated;
* candidates are ``candidates`` (100) mutations of the best cells: the unvisited cells one
  edit away from the best cell told so far, then from the next best, and so on (the
  paper's code mutates its best architecture first and moves on to the next ones when it
  runs out), filled with random unvisited cells if the neighbourhoods run dry.

The networks are refitted from the told values every round; nothing is carried between
rounds but the random generator, so a saved state resumes exactly.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from annotated_types import Ge, Gt

from searchers.base import Domain, Searcher
from searchers.mlp import TanhMLP
from searchers.registry import register


def mutation_candidates(searcher: Searcher, order: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` unvisited positions one edit away from the positions in ``order``
    (best first), then random unvisited ones; ascending within each source."""
    picked: list[int] = []
    seen = set()
    for p in order:
        for q in searcher.domain.neighbour_positions(int(p)):
            q = int(q)
            if not searcher.taken[q] and q not in seen:
                seen.add(q)
                picked.append(q)
        if len(picked) >= count:
            break
    picked = picked[:count]
    if len(picked) < count:
        free = np.setdiff1d(searcher.unvisited(), picked)
        extra = searcher.rng.choice(free, size=min(count - len(picked), len(free)), replace=False)
        picked += [int(q) for q in extra]
    return np.array(picked, dtype=np.int64)


@register("bananas")
class BANANASSearch(Searcher):
    """BANANAS: a neural ensemble on the path encoding, Thompson sampling over mutations
    (see the module docstring)."""

    requires = ("features", "neighbours")
    default_encodings = ("path",)
    query_options = ("init", "batch_size")

    def __init__(self, domain: Domain, rng: np.random.Generator,
                 init: Annotated[int, Ge(1)] = 10, batch_size: Annotated[int, Ge(1)] = 10,
                 members: Annotated[int, Ge(2)] = 5, layers: Annotated[int, Ge(1)] = 10,
                 units: Annotated[int, Ge(1)] = 20, epochs: Annotated[int, Ge(1)] = 200,
                 learning_rate: Annotated[float, Gt(0)] = 0.01,
                 minibatch: Annotated[int, Ge(1)] = 32,
                 candidates: Annotated[int, Ge(1)] = 100):
        super().__init__(domain, rng)
        self.init, self.batch_size, self.members = init, batch_size, members
        self.layers, self.units, self.epochs = layers, units, epochs
        self.learning_rate, self.minibatch, self.candidates = learning_rate, minibatch, candidates
        self.x = domain.features.astype(np.float64)

    def _propose(self, n: int) -> list[int]:
        started = self.start_round(n, self.init)
        if started is not None:
            return started
        pos = np.asarray(self.history_pos)
        y = np.asarray(self.history_y)
        y = (y - y.mean()) / (y.std() + 1e-12)
        cand = mutation_candidates(self, pos[np.argsort(-y, kind="stable")],
                                   max(self.candidates, n))
        preds = []
        for _ in range(self.members):
            net = TanhMLP(self.x.shape[1], self.units, self.layers, self.rng,
                          activation="relu", loss="mae")
            net.fit(self.x[pos], y, self.epochs, self.minibatch, self.learning_rate, self.rng)
            preds.append(net.predict(self.x[cand]))
        preds = np.stack(preds)
        draws = self.rng.normal(preds.mean(0), preds.std(0))
        k = min(n, self.batch_size, len(cand))
        return [int(p) for p in cand[np.argsort(-draws, kind="stable")[:k]]]
