"""Analyses of an embedding against the metric it should make easy to search.

* :func:`smoothness`: mean |Δ metric| between anchor cells and their nearest latent
  neighbours, against random pairs (the arch2vec paper's "nearest-neighbour" analysis);
"""

from __future__ import annotations

import numpy as np


def smoothness(embeddings: np.ndarray, values: np.ndarray, rng: np.random.Generator,
               anchors: int = 1000, k: int = 10) -> dict[str, float]:
    """Mean |Δ value| from ``anchors`` random cells to their nearest latent neighbour, to
    their ``k`` nearest, and to random cells (L2 in embedding space)."""
    n = len(embeddings)
    idx = rng.choice(n, min(anchors, n), replace=False)
    nearest = np.empty((len(idx), k), dtype=np.int64)
    for start in range(0, len(idx), 256):      # chunks keep the distance matrix small
        part = idx[start:start + 256]
        dist = ((embeddings[part, None, :] - embeddings[None, :, :]) ** 2).sum(-1)
        dist[np.arange(len(part)), part] = np.inf
        nearest[start:start + len(part)] = np.argsort(dist, axis=1, kind="stable")[:, :k]
    random = rng.integers(0, n, len(idx))
    return {"anchors": len(idx),
            "nearest": float(np.abs(values[nearest[:, 0]] - values[idx]).mean()),
            f"nearest_{k}": float(np.abs(values[nearest] - values[idx, None]).mean()),
            "random": float(np.abs(values[random] - values[idx]).mean())}
