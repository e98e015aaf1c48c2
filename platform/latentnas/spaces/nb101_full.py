"""NAS-Bench-101 as a finite space: the 423,624 enumerated cells, addressed by id.

``nb101`` stays the rule set (parse, validate, hash, sample) and needs no enumeration;
``nb101-full`` is what searches run on. Its cells, tensors and ids come from
:mod:`latentnas.spaces.nb101_enum`: the graphs are enumerated in under a second on first
use; the official hashes (for :meth:`index`) are read from the enumeration cache, built
once by ``latentnas bench enumerate`` or on first need (about 30 s on 2 cores).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from latentnas.spaces.base import Cell, FiniteSpace
from latentnas.spaces.nb101 import VOCABULARY, NB101Space


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
    def _ids(self) -> dict[str, int]:
        from latentnas.spaces.nb101_enum import cached_enumeration

        return {h: i for i, h in enumerate(cached_enumeration().hashes)}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        cached = self.__dict__.get("_arrays")
        if cached is None:
            cached = self.__dict__["_arrays"] = (self._enum.adj, self._enum.one_hot())
        return cached
