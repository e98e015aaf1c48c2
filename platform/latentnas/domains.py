"""Search domains: a finite space's cells with the feature vectors of one encoding, the
space's neighbour function and its cell tensors. Which vectors an encoding gives is decided
in ``latentnas.models``."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from latentnas.spaces.base import FiniteSpace
from searchers import Domain
from searchers.base import Choices


@lru_cache(maxsize=None)
def neighbour_fn(space: FiniteSpace) -> Callable[[int], list[int]]:
    """``id -> ids`` of the one-edit neighbours, memoised per id (one function per space)."""
    cells = space.cells()

    @lru_cache(maxsize=None)
    def neighbours(i: int) -> tuple[int, ...]:
        return tuple(space.index(c) for c in space.neighbours(cells[i]))

    return lambda i: list(neighbours(int(i)))


def make_domain(space: FiniteSpace, features: np.ndarray | None = None, *,
                ids: np.ndarray | None = None, nearest: Callable | None = None,
                top_k: Callable | None = None, value_scale: float = 1.0) -> Domain:
    """The cells of ``space`` (or only ``ids``, when an oracle covers part of it) as a
    :class:`searchers.Domain` with ``features`` (rows of every cell, or ``None``).
    ``nearest`` and ``top_k`` are the domain's hooks for nearest-cell and acquisition
    top-k queries (encoder shards); ``value_scale`` is 100 for percent metrics."""
    graphs = space.arrays()
    if ids is None:
        ids = np.arange(space.size)
    else:
        ids = np.asarray(ids, dtype=np.int64)
        features = None if features is None else features[ids]
        graphs = (graphs[0][ids], graphs[1][ids])
    return Domain(ids=ids, features=features, neighbours=neighbour_fn(space), graphs=graphs,
                  nearest=nearest, top_k=top_k, value_scale=value_scale,
                  choices=space_choices(space),
                  empty_ops=tuple(space.ops.index(o) for o in space.empty_ops),
                  identity_ops=tuple(space.ops.index(o) for o in space.identity_ops))


@lru_cache(maxsize=None)
def space_choices(space: FiniteSpace) -> Choices | None:
    """The space's cells as categorical choices, or ``None`` where it has no such form."""
    try:
        columns = space.choice_columns()
    except NotImplementedError:
        return None
    return Choices(columns=columns, encode=lru_cache(maxsize=None)(space.to_choices),
                   decode=lru_cache(maxsize=None)(space.from_choices))
