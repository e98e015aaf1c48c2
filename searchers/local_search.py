"""Best-improvement local search over one-edit neighbours, with random restarts."""

from __future__ import annotations

import numpy as np

from searchers.base import Domain, Searcher
from searchers.registry import register


@register("ls")
class LocalSearch(Searcher):
    """From the current cell, evaluate every unvisited neighbour, then move to the best
    neighbour (already evaluated ones included) if it beats the current cell; otherwise
    (a local optimum) restart from a random unvisited cell.

    ``ask`` returns the current cell's remaining neighbours in one batch (in a random
    order), or the restart cell; it returns nothing while a batch awaits its values.
    """

    requires = ("neighbours",)

    def __init__(self, domain: Domain, rng: np.random.Generator):
        super().__init__(domain, rng)
        self.current: int | None = None      # position of the current cell
        self.queue: list[int] = []           # neighbours of current still to propose
        self.values: dict[int, float] = {}   # every told value by position

    def _propose(self, n: int) -> list[int]:
        if self.pending:
            return []
        while not self.queue:
            if self.current is not None and self._move():
                continue
            start = int(self.random_unvisited(1)[0])
            self.current = None
            return [start]
        batch, self.queue = self.queue[:n], self.queue[n:]
        return batch

    def _move(self) -> bool:
        """Moves to the best neighbour if it improves; False at a local optimum."""
        nbrs = [int(p) for p in self.domain.neighbour_positions(self.current) if int(p) in self.values]
        if nbrs:
            best = max(nbrs, key=lambda p: (self.values[p], -p))
            if self.values[best] > self.values[self.current]:
                self._enter(best)
                return True
        self.current = None
        return False

    def _enter(self, pos: int) -> None:
        self.current = pos
        free = [int(p) for p in self.domain.neighbour_positions(pos) if not self.taken[p]]
        self.queue = [free[k] for k in self.rng.permutation(len(free))]

    def _observe(self, pos: np.ndarray, values: np.ndarray) -> None:
        self.values.update((int(p), float(v)) for p, v in zip(pos, values))
        if self.current is None and len(pos) == 1 and not self.queue:
            self._enter(int(pos[0]))     # the restart cell was told: explore around it

    def _state(self) -> dict:
        return {"current": self.current, "queue": list(self.queue)}

    def _load_state(self, state: dict) -> None:
        self.current, self.queue = state["current"], list(state["queue"])
        self.values = dict(zip(self.history_pos, self.history_y))
