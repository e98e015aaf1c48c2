"""Regularized evolution (Real et al., 2019) on the graph of one-edit moves."""

from __future__ import annotations

from collections import deque
from typing import Annotated

import numpy as np
from annotated_types import Ge

from searchers.base import Domain, Searcher
from searchers.registry import register


@register("re")
class RegularizedEvolution(Searcher):
    """Aging evolution: tournament of ``sample_size`` from the last ``population_size``
    evaluated cells, the winner's child is one random edit away, the oldest member dies.

    The first ``population_size`` proposals are random. A child is an unvisited neighbour of
    the parent; when all of those are taken, the mutation walks on to a random neighbour
    and tries again (up to ``max_walk`` edits), and falls back to a random unvisited cell.
    ``batch_size`` children are proposed per ``ask`` (1 = the sequential algorithm).
    """

    requires = ("neighbours",)

    query_options = ("population_size", "batch_size")

    def __init__(self, domain: Domain, rng: np.random.Generator,
                 population_size: Annotated[int, Ge(1)] = 20,
                 sample_size: Annotated[int, Ge(1)] = 5,
                 batch_size: Annotated[int, Ge(1)] = 1,
                 max_walk: Annotated[int, Ge(0)] = 10):
        super().__init__(domain, rng)
        self.check_options({"population_size": population_size, "sample_size": sample_size})
        self.population_size, self.sample_size = population_size, sample_size
        self.batch_size, self.max_walk = batch_size, max_walk
        self.population: deque[tuple[int, float]] = deque(maxlen=population_size)

    @classmethod
    def check_options(cls, options: dict) -> None:
        if options["sample_size"] > options["population_size"]:
            raise ValueError(f"sample_size={options['sample_size']} is larger than "
                             f"population_size={options['population_size']}; a tournament "
                             "draws from the population")

    def _propose(self, n: int) -> list[int]:
        n = min(n, self.batch_size)
        seeding = self.population_size - self.num_told - len(self.pending)
        if seeding > 0:
            return list(self.random_unvisited(min(n, seeding)))
        if len(self.population) < self.population_size:
            return []        # the initial population is still being evaluated
        out: list[int] = []
        for _ in range(n):
            members = self.rng.choice(len(self.population), self.sample_size, replace=False)
            parent = max((self.population[m] for m in members), key=lambda pv: pv[1])[0]
            out.append(self._mutate(parent, out))
        return out

    def _mutate(self, parent: int, chosen: list[int]) -> int:
        node = parent
        for _ in range(self.max_walk):
            nbrs = self.domain.neighbour_positions(node)
            if len(nbrs) == 0:
                break
            free = [p for p in nbrs if not self.taken[p] and p not in chosen]
            if free:
                return int(free[self.rng.integers(len(free))])
            node = int(nbrs[self.rng.integers(len(nbrs))])
        free = np.setdiff1d(self.unvisited(), chosen)
        return int(free[self.rng.integers(len(free))])

    def _observe(self, pos: np.ndarray, values: np.ndarray) -> None:
        self.population.extend((int(p), float(v)) for p, v in zip(pos, values))

    def _state(self) -> dict:
        return {"population": list(self.population)}

    def _load_state(self, state: dict) -> None:
        self.population = deque((tuple(pv) for pv in state["population"]),
                                maxlen=self.population_size)
