"""NAS-Bench-101 as a finite space: the 423,624 enumerated cells, addressed by id.

``nb101`` stays the rule set (parse, validate, hash, sample) and needs no enumeration;
``nb101-full`` is what searches run on. Its cells, tensors and ids come from
:mod:`latentnas.spaces.nb101_enum`: the graphs are enumerated in under a second on first
use. :meth:`index` finds a cell's id from its pruned graph under every relabelling of its
middle nodes (at most 120), without the official hashes; those (:meth:`hashes`, for the
embedding table and the user's tfrecord) are read from the enumeration cache, built once by
``latentnas bench enumerate`` or on first need (about 30 s on 2 cores, with progress).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from latentnas.spaces.base import Cell, FiniteSpace
from latentnas.spaces.nb101 import HASH_OPS, VOCABULARY, NB101Space


class _LazyCells(Sequence):
    """Cells built from the enumeration's arrays on access (423,624 objects are not
    built up front)."""

    def __init__(self, enum):
        self.enum = enum

    def __len__(self) -> int:
        return len(self.enum)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        n = int(self.enum.nodes[k])
        return Cell.make(self.enum.adj[k, :n, :n], [VOCABULARY[i] for i in self.enum.ops[k, :n]])


class NB101FullSpace(FiniteSpace, NB101Space):
    """Every unique NB101 cell by id (see the module docstring)."""

    name = "nb101-full"

    @cached_property
    def _enum(self):
        from latentnas.cache import cache_dir
        from latentnas.spaces import nb101_enum

        path = cache_dir("nb101", "cells.npz")
        if os.path.exists(path):
            return nb101_enum.load(path)
        return nb101_enum.enumerate_nb101(hashes=False)

    def _enumerate(self) -> Sequence[Cell]:
        return _LazyCells(self._enum)

    @cached_property
    def _sorted_codes(self) -> tuple[np.ndarray, np.ndarray]:
        from latentnas.spaces.nb101_enum import cell_codes

        codes = cell_codes(self._enum.adj, self._enum.ops)
        order = np.argsort(codes, kind="stable")
        return codes[order], order

    def index(self, cell: Cell) -> int:
        """The id of ``cell`` (any labelling, prunable nodes allowed)."""
        from latentnas.errors import InvalidCellError
        from latentnas.spaces.nb101_enum import _perms, cell_codes

        pruned = self.canonical(cell)
        n = pruned.num_nodes
        perms = _perms(n)
        moved = pruned.adjacency()[perms[:, :, None], perms[:, None, :]]
        perms = perms[~np.tril(moved, -1).any(axis=(1, 2))]     # topological labellings only
        adj = np.zeros((len(perms), 7, 7), dtype=np.uint8)
        adj[:, :n, :n] = pruned.adjacency()[perms[:, :, None], perms[:, None, :]]
        ops = np.full((len(perms), 7), -1, dtype=np.int64)
        ops[:, :n] = np.array([VOCABULARY.index(o) for o in pruned.ops])[perms]
        codes, order = self._sorted_codes
        want = cell_codes(adj, ops)
        at = np.minimum(np.searchsorted(codes, want), len(codes) - 1)
        hit = np.flatnonzero(codes[at] == want)
        if not len(hit):
            raise InvalidCellError(f"cell {self.format(cell)} is valid but not among the "
                                   f"{self.size:,} cells of {self.name}")
        return int(order[at[hit[0]]])

    _PAIRS = tuple((i, j) for i in range(7) for j in range(i + 1, 7))

    def choice_columns(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The 21 edges of a 7-node upper-triangular matrix, then the 5 middle ops."""
        return (tuple((f"{i}->{j}", ("0", "1")) for i, j in self._PAIRS)
                + tuple((f"op{k}", HASH_OPS) for k in range(1, 6)))

    def to_choices(self, cell_id: int) -> tuple[int, ...]:
        cell = self.cells()[int(cell_id)]
        n = cell.num_nodes
        # a smaller cell as 7 nodes: unused nodes between the last op and the output
        # (pruned by the rules, so the same cell), with the first op's label
        slot = list(range(n - 1)) + [6]
        adj = np.zeros((7, 7), dtype=np.int64)
        adj[np.ix_(slot, slot)] = cell.adjacency()
        ops = [HASH_OPS.index(o) for o in cell.ops[1:-1]]
        ops += [0] * (5 - len(ops))
        return tuple(int(adj[i, j]) for i, j in self._PAIRS) + tuple(ops)

    def from_choices(self, codes) -> int | None:
        from latentnas.errors import InvalidCellError

        codes = [int(c) for c in codes]
        adj = np.zeros((7, 7), dtype=np.int64)
        for (i, j), bit in zip(self._PAIRS, codes[:21]):
            adj[i, j] = bit
        cell = Cell.make(adj, ("input", *(HASH_OPS[c] for c in codes[21:]), "output"))
        if self.problem(cell) is not None:
            return None
        try:
            return self.index(cell)
        except InvalidCellError:
            return None

    @cached_property
    def _ids(self) -> dict[str, int]:
        from latentnas.spaces.nb101_enum import cached_enumeration

        return {h: i for i, h in enumerate(cached_enumeration().hashes)}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        cached = self.__dict__.get("_arrays")
        if cached is None:
            cached = self.__dict__["_arrays"] = (self._enum.adj, self._enum.one_hot())
        return cached
