"""Search domains: a finite space's cells with the feature vectors of one encoding.

Encodings:

* ``arch2vec``: the pretrained embedding table (pretrained on first use, then cached);
* every other learned encoder of ``encoders.registry`` (``mpnn``, ``barlow``, ``jepa``,
  plug-ins) by its name, the same way: its default model for the space, pretrained on
  first use and cached;
* ``adjacency``: adjacency one-hot (upper triangle + one-hot ops);
* ``path``: path encoding, vocabulary = every path label that occurs in the space;
* ``supervised``: no fixed vectors; searchers that learn their own encoding of the cell
  graphs (``bo``) train a GIN on the values they observe;
* ``none``: no vectors, for strategies that move on the graph of one-edit neighbours.

Every domain also carries the space's neighbour function and its cell tensors.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from latentnas.errors import UnknownNameError
from latentnas.spaces.base import FiniteSpace
from searchers import Domain

ENCODINGS = ("arch2vec", "adjacency", "path", "supervised", "none")
#: encodings that give every cell a vector (the others give none)
FEATURE_ENCODINGS = ("arch2vec", "adjacency", "path")


def learned(encoding: str) -> bool:
    """Whether ``encoding`` is a pretrained encoder's table (arch2vec, mpnn, plug-ins...)."""
    from encoders.registry import is_encoder

    return is_encoder(encoding)


def encoding_names() -> tuple[str, ...]:
    """Every encoding a search accepts: the fixed ones and every learned encoder."""
    from encoders.registry import available

    return tuple(dict.fromkeys([*ENCODINGS, *available()]))


def feature_encodings() -> tuple[str, ...]:
    """Encodings that give every cell a vector (the others give none)."""
    from encoders.registry import available

    return tuple(dict.fromkeys([*FEATURE_ENCODINGS, *available()]))


def encoding_features(space: FiniteSpace, encoding: str,
                      encoder_seed: int | None = None) -> np.ndarray | None:
    """``[M, d]`` float32 vectors of every cell of ``space`` (``None`` for supervised/none),
    computed once per process; ``encoder_seed`` picks the learned encoder's model
    pretrained with that seed (default: the space's default model)."""
    if encoding in ("supervised", "none"):
        return None
    if encoding not in ("adjacency", "path") and not learned(encoding):
        raise UnknownNameError("encoding", encoding, encoding_names())
    return _features(space.name, encoding, encoder_seed if learned(encoding) else None)


@lru_cache(maxsize=None)
def _features(space_name: str, encoding: str, encoder_seed: int | None) -> np.ndarray:
    import torch

    from latentnas.spaces import get_space

    space = get_space(space_name)
    if learned(encoding):
        from latentnas.checkpoints import load_embeddings
        from latentnas.pretrain import default_config, pretrain

        config = default_config(space_name, encoding, seed=encoder_seed)
        emb, _ = load_embeddings(pretrain(space_name, config, encoder=encoding).embeddings,
                                 space)
        return emb
    from encoders.discrete import AdjacencyOneHot, PathEncoding

    adj, ops = space.arrays()
    adj_t, ops_t = torch.as_tensor(adj, dtype=torch.float32), torch.as_tensor(ops)
    enc = AdjacencyOneHot() if encoding == "adjacency" else PathEncoding()
    return enc.fit(adj_t, ops_t).encode(adj_t, ops_t).numpy()


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
                  nearest=nearest, top_k=top_k, value_scale=value_scale)
