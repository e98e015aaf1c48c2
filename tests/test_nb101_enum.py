"""The NB101 enumeration: the paper's count, cells valid in the space, and the isomorphism
dedup checked against brute force with the official hash on small cells."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latentnas.spaces.base import Cell
from latentnas.spaces.nb101 import HASH_OPS, VOCABULARY
from latentnas.spaces.nb101_enum import EXPECTED, enumerate_nb101


@pytest.fixture(scope="module")
def small():
    return enumerate_nb101(max_nodes=5, workers=1)


def _cells(enum, rows):
    out = []
    for k in rows:
        n = int(enum.nodes[k])
        out.append(Cell.make(enum.adj[k, :n, :n], [VOCABULARY[i] for i in enum.ops[k, :n]]))
    return out


def test_small_cells_match_brute_force_with_the_official_hash(nb101, small):
    """Every labelled upper-triangular matrix of up to 5 nodes, kept when valid and
    unpruned, deduplicated by the official hash: the same set of hashes."""
    brute = set()
    for n in range(2, 6):
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        for bits in itertools.product((0, 1), repeat=len(pairs)):
            m = np.zeros((n, n), dtype=np.uint8)
            for (i, j), b in zip(pairs, bits):
                m[i, j] = b
            for labels in itertools.product(HASH_OPS, repeat=n - 2):
                cell = Cell.make(m, ["input", *labels, "output"])
                if nb101.problem(cell) is None and nb101.canonical(cell).num_nodes == n:
                    brute.add(nb101.canonical_hash(cell))
    assert len(small) == len(brute)
    assert set(small.hashes) == brute


def test_enumerated_cells_are_valid_unpruned_and_hash_as_the_space_does(nb101, small):
    for cell, h in zip(_cells(small, range(len(small))), small.hashes):
        assert nb101.problem(cell) is None
        assert nb101.canonical(cell).num_nodes == cell.num_nodes
        assert nb101.canonical_hash(cell) == h
    one_hot = small.one_hot()
    adj, ops = nb101.to_arrays(_cells(small, range(len(small))))
    np.testing.assert_array_equal(one_hot, ops)
    np.testing.assert_array_equal(small.adj, adj)


def test_the_full_space_has_the_papers_count():
    enum = enumerate_nb101(hashes=False)
    assert len(enum) == EXPECTED == 423_624
    assert (enum.adj.sum((1, 2)) <= 9).all()
    counts = np.bincount(enum.nodes, minlength=8)
    assert counts[7] > counts[6] > counts[5]      # most NB101 cells have 7 nodes
