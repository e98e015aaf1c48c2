"""Isomorphic copies of cells for invariance tests."""

import numpy as np


def relabel_inner(cells, rng: np.random.Generator):
    """Each cell with its nodes in a random topological order that keeps the input first
    and the output last (the spaces' convention); cells with no such order stay as they are."""
    from latentnas.spaces.base import random_topological_order

    out = []
    for cell in cells:
        order = random_topological_order(cell, rng)
        ok = order[0] == 0 and order[-1] == cell.num_nodes - 1
        out.append(cell.relabel(order) if ok else cell)
    return out
