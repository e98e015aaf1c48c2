"""Random search without replacement: the baseline every other strategy must beat."""

from __future__ import annotations

import numpy as np

from searchers.base import Domain, Searcher
from searchers.registry import register


@register("random")
class RandomSearch(Searcher):
    """Proposes unvisited candidates uniformly at random, as many as asked."""

    def __init__(self, domain: Domain, rng: np.random.Generator):
        super().__init__(domain, rng)

    def _propose(self, n: int) -> np.ndarray:
        return self.random_unvisited(n)
