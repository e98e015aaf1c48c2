"""Discrete encodings: adjacency one-hot and path encoding (the paper's non-learned baselines).

Neither needs training data beyond what :meth:`PathEncoding.fit` reads to fix its path
vocabulary; both are deterministic functions of the cell tensors.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from encoders.base import Encoder


class AdjacencyOneHot(Encoder):
    """The upper-triangular adjacency entries followed by the flattened one-hot ops.

    For ``N`` nodes and ``K`` ops: ``dim = N(N-1)/2 + N·K``. Isomorphic cells with different
    node orders get different vectors; that is the weakness the learned encodings address.

    Example:
        >>> enc = AdjacencyOneHot().fit(adj, ops)    # doctest: +SKIP
        >>> enc.encode(adj, ops).shape               # [B, N(N-1)/2 + N*K]
    """

    name = "adjacency"

    def fit(self, adj: torch.Tensor, ops: torch.Tensor, y=None) -> "AdjacencyOneHot":
        n, k = ops.shape[1], ops.shape[2]
        self.num_nodes, self.num_ops = n, k
        self.dim = n * (n - 1) // 2 + n * k
        return self

    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        n = adj.shape[1]
        rows, cols = torch.triu_indices(n, n, offset=1)
        upper = adj[:, rows, cols].float()
        return torch.cat([upper, ops.float().flatten(1)], dim=1)


def cell_paths(adj: np.ndarray, op_index: np.ndarray, last: int) -> set[tuple[int, ...]]:
    """The op-index sequences of the intermediate nodes on every path ``0 -> last``."""
    # paths[v] = labels of the paths from the input to v, v's own op excluded
    paths: dict[int, set[tuple[int, ...]]] = {0: {()}}
    for v in range(1, last + 1):
        incoming = set()
        for u in range(v):
            if adj[u, v] and u in paths:
                own = () if u == 0 else (int(op_index[u]),)
                incoming.update(p + own for p in paths[u])
        if incoming:
            paths[v] = incoming
    return paths.get(last, set())


class PathEncoding(Encoder):
    """Path encoding (White et al., BANANAS): one bit per input→output path label.

    A path's label is the sequence of ops on its intermediate nodes. :meth:`fit` collects
    the labels that occur in the given cells and keeps the ``max_paths`` most frequent
    (ties broken by label), which is the truncation that keeps large vocabularies
    tractable; labels never seen in ``fit`` are dropped at :meth:`encode`. The output node
    of a cell is its last node with an op (padding rows are all zero).

    Example:
        >>> enc = PathEncoding(max_paths=256).fit(adj, ops)   # doctest: +SKIP
        >>> x = enc.encode(adj, ops)                          # [B, <=256] 0/1 floats
    """

    name = "path"

    def __init__(self, max_paths: int | None = None):
        if max_paths is not None and max_paths < 1:
            raise ValueError(f"max_paths must be positive or None, got {max_paths}")
        self.max_paths = max_paths
        self.vocabulary: list[tuple[int, ...]] = []

    @staticmethod
    def _labels(adj: torch.Tensor, ops: torch.Tensor) -> list[set[tuple[int, ...]]]:
        adj_np = adj.detach().cpu().numpy() > 0.5
        ops_np = ops.detach().cpu().numpy()
        real = ops_np.sum(-1) > 0
        op_index = ops_np.argmax(-1)
        out = []
        for a, o, r in zip(adj_np, op_index, real):
            last = int(np.flatnonzero(r)[-1]) if r.any() else 0
            out.append(cell_paths(a, o, last))
        return out

    def fit(self, adj: torch.Tensor, ops: torch.Tensor, y=None) -> "PathEncoding":
        counts = Counter(p for labels in self._labels(adj, ops) for p in labels)
        ranked = sorted(counts, key=lambda p: (-counts[p], len(p), p))
        self.vocabulary = ranked[: self.max_paths] if self.max_paths else sorted(ranked, key=lambda p: (len(p), p))
        self._index = {p: i for i, p in enumerate(self.vocabulary)}
        self.dim = len(self.vocabulary)
        return self

    def encode(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        if not self.vocabulary:
            raise RuntimeError("PathEncoding.encode needs fit() first (it fixes the path vocabulary)")
        labels = self._labels(adj, ops)
        out = torch.zeros(len(labels), self.dim)
        for row, cell_labels in enumerate(labels):
            cols = [self._index[p] for p in cell_labels if p in self._index]
            out[row, cols] = 1.0
        return out
