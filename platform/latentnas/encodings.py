"""Search domains: a finite space's cells with the feature vectors of one encoding.

Encodings:

* ``arch2vec``: the pretrained embedding table (pretrained on first use, then cached);
* ``adjacency``: adjacency one-hot (upper triangle + one-hot ops);
* ``path``: path encoding, vocabulary = every path label that occurs in the space;
* ``supervised``: no fixed vectors; searchers that support it (``bo``) learn a GIN
  encoding of the cell graphs from the values they observe;
* ``none``: no vectors, for strategies that move on the graph of one-edit neighbours.

Every domain also carries the space's neighbour function and its cell tensors.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from latentnas.errors import UnknownNameError
from latentnas.spaces import get_space
from latentnas.spaces.base import FiniteSpace
from searchers import Domain

ENCODINGS = ("arch2vec", "adjacency", "path", "supervised", "none")


@lru_cache(maxsize=None)
def encoding_features(space_name: str, encoding: str, device: str = "auto") -> np.ndarray | None:
    """``[M, d]`` float32 vectors of every cell of ``space_name`` (``None`` for supervised/none)."""
    import torch

    if encoding not in ENCODINGS:
        raise UnknownNameError("encoding", encoding, ENCODINGS)
    if encoding in ("supervised", "none"):
        return None
    space = _finite(space_name)
    if encoding == "arch2vec":
        from latentnas.checkpoints import load_embeddings
        from latentnas.pretrain import pretrain

        emb, _ = load_embeddings(pretrain(space_name, device=device).embeddings, space)
        return emb
    from encoders.discrete import AdjacencyOneHot, PathEncoding

    adj, ops = space.arrays()
    adj_t, ops_t = torch.as_tensor(adj, dtype=torch.float32), torch.as_tensor(ops)
    enc = AdjacencyOneHot() if encoding == "adjacency" else PathEncoding()
    return enc.fit(adj_t, ops_t).encode(adj_t, ops_t).numpy()


def _finite(space_name: str) -> FiniteSpace:
    space = get_space(space_name)
    if space.size is None:
        raise UnknownNameError("finite space (searches need an enumerated space)", space_name,
                               ("nb201", "nbgraph", "nbgraph-proteins"))
    return space


@lru_cache(maxsize=None)
def neighbour_fn(space_name: str) -> Callable[[int], list[int]]:
    """``id -> ids`` of the one-edit neighbours, memoised per id (one function per space)."""
    space = _finite(space_name)
    cells = space.cells()

    @lru_cache(maxsize=None)
    def neighbours(i: int) -> tuple[int, ...]:
        return tuple(space.index(c) for c in space.neighbours(cells[i]))

    return lambda i: list(neighbours(int(i)))


def make_domain(space_name: str, encoding: str, device: str = "auto",
                features: np.ndarray | None = None,
                nearest: Callable[[np.ndarray, np.ndarray], int] | None = None,
                top_k: Callable | None = None, ids: np.ndarray | None = None) -> Domain:
    """The whole finite space as a :class:`searchers.Domain` under ``encoding``.

    ``features`` replaces the encoding's table when the caller already holds it (a Ray
    trial reads it from the object store); ``nearest`` and ``top_k`` are the domain's
    hooks for nearest-cell and acquisition top-k queries (encoder shards). ``ids``
    restricts the domain to those cells (an oracle that covers part of the space).
    """
    space = _finite(space_name)
    if features is None:
        features = encoding_features(space_name, encoding, device)
    graphs = space.arrays()
    if ids is None:
        ids = np.arange(space.size)
    else:
        ids = np.asarray(ids, dtype=np.int64)
        features = None if features is None else features[ids]
        graphs = (graphs[0][ids], graphs[1][ids])
    return Domain(ids=ids, features=features, neighbours=neighbour_fn(space_name),
                  graphs=graphs, nearest=nearest, top_k=top_k)
